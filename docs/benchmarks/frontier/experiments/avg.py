"""Issue 20 experiment: weight averages of the default's two networks, on the validation split. See README.md here."""
# ruff: noqa
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paths import SHARED, OUT, CONFIGS
import os, sys, json, time
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS","0")
import numpy as np
from emoedge.data.datasets import load_fer2013_csv
from emoedge.data.splits import standard_splits
from emoedge.core.preprocess import normalize
from emoedge.train.masters import member_weights, load_into, MODELS_DIR
from emoedge.train import zoo
run = json.loads((MODELS_DIR/"default.run.json").read_text())
cfg = run["config"]
ds = load_fer2013_csv(SHARED + "/data/fer2013/fer2013.csv.gz", usage=["Training","PublicTest"])
sp = standard_splits(ds, val_fraction=0.1, seed=1)
xv, yv = normalize(sp["val"].images), sp["val"].labels
print("val", len(yv))
nets = member_weights(MODELS_DIR/"default.int8.tflite")
def build(layers):
    m = zoo.build(cfg["arch"], 7, **cfg["arch_kwargs"]); load_into(m, layers); return m
def acc(m, x=xv, y=yv):
    p = m.predict(x[..., None] if x.ndim==3 else x, batch_size=512, verbose=0)
    return (p.argmax(1)==y).mean(), p
a0,p0 = acc(build(nets[0])); a1,p1 = acc(build(nets[1]))
print("m0", a0, "m1", a1, "ens", ((p0+0.5*p1).argmax(1)==yv).mean())
for alpha in [0.25, 0.33, 0.5]:
    layers = [(o, (1-alpha)*k0+alpha*k1, (1-alpha)*b0+alpha*b1) for (o,k0,b0),(_,k1,b1) in zip(nets[0],nets[1])]
    a,_ = acc(build(layers)); print("avg alpha", alpha, a, flush=True)
