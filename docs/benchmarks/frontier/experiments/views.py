"""Issue 20 experiment: each of the default's networks on single views (mirror, centre zooms), on the validation split. See README.md here."""
# ruff: noqa
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paths import SHARED, OUT, CONFIGS
import os, json
os.environ["TF_ENABLE_ONEDNN_OPTS"]="0"
import numpy as np, tensorflow as tf
from emoedge.data.datasets import load_fer2013_csv
from emoedge.data.splits import standard_splits
from emoedge.core.preprocess import normalize
from emoedge.train.masters import member_weights, load_into, MODELS_DIR
from emoedge.train import zoo
cfg = json.loads((MODELS_DIR/"default.run.json").read_text())["config"]
ds = load_fer2013_csv(SHARED + "/data/fer2013/fer2013.csv.gz", usage=["Training","PublicTest"])
sp = standard_splits(ds, val_fraction=0.1, seed=1)
xv, yv = normalize(sp["val"].images), sp["val"].labels
nets = member_weights(MODELS_DIR/"default.int8.tflite")
def build(layers):
    m = zoo.build(cfg["arch"], 7, **cfg["arch_kwargs"]); load_into(m, layers); return m
def zoom(x, px):
    c = x[:, px:48-px, px:48-px]
    return tf.image.resize(c, (48, 48)).numpy()
views = {"orig": xv, "flip": xv[:, :, ::-1], "z2": zoom(xv, 2), "z1": zoom(xv, 1), "z3": zoom(xv, 3)}
for i, layers in enumerate(nets):
    m = build(layers)
    P = {k: m.predict(v, batch_size=512, verbose=0) for k, v in views.items()}
    for k, p in P.items():
        print(i, k, round((p.argmax(1)==yv).mean()*100, 2))
    print(i, "orig+flip", round(((P["orig"]+P["flip"]).argmax(1)==yv).mean()*100, 2))
