"""Issue 20 experiment: fine-tuning the first network on the 8-pass teacher's fixed outputs for the training faces (args: lr soft_weight T steps tag [aug]; RESCALE=1 moves each channel's scale into the frozen BatchNorm, L2=0 turns L2 off). See README.md here."""
# ruff: noqa
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paths import SHARED, OUT, CONFIGS
import os, sys, json, time
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
import numpy as np
from pathlib import Path
from emoedge.data.datasets import load_fer2013_csv
from emoedge.train.augment import make_augmenter
from emoedge.train.predict import predict_probs
from emoedge.train.targets import soften
from emoedge.train.trainer import TrainConfig
from emoedge.train import steps
import yaml
lr = float(sys.argv[1]); sw = float(sys.argv[2]); T = float(sys.argv[3]); nsteps = int(sys.argv[4]); tag = sys.argv[5]
aug = sys.argv[6] if len(sys.argv) > 6 else "lineage"
cfgd = yaml.safe_load(open(CONFIGS + "/onepass.yaml"))
cfgd["arch_kwargs"] = dict(cfgd["arch_kwargs"], l2=float(os.environ.get("L2", "1e-4")))
cfgd.update(learning_rate=lr, soft_weight=sw, soft_temperature=T, schedule="constant")
if aug == "flip":
    cfgd["augment"] = dict(flip=True, rotation_deg=0, zoom=0, shift=0, brightness=0, contrast=0, blur_prob=0, erase_prob=0)
elif aug == "light":
    cfgd["augment"] = dict(flip=True, rotation_deg=5, zoom=0.05, shift=0.04, brightness=0.05, contrast=0.1, blur_prob=0, erase_prob=0)
config = TrainConfig.from_dict(cfgd)
ds = load_fer2013_csv(SHARED + "/data/fer2013/fer2013.csv.gz", usage=["Training", "PublicTest"])
data = steps.data_splits(config, ds, None)
cache = Path(OUT) / "teacher_train.npy"
if not cache.exists():
    from emoedge.keras.io import load_keras
    from emoedge.train.masters import resolve_keras
    t0 = time.time()
    teacher = load_keras(resolve_keras("default"))
    p = (predict_probs(teacher, data.x_train) + predict_probs(teacher, data.x_train[:, :, ::-1])) / 2
    np.save(cache, p)
    pv = predict_probs(teacher, data.x_val)
    np.save(OUT + "/teacher_val.npy", pv)
    print("teacher", time.time() - t0, "s; val acc", (pv.argmax(1) == data.y_val).mean(), flush=True)
p = np.load(cache); pv = np.load(OUT + "/teacher_val.npy")
onehot = np.eye(7, dtype=np.float32)[data.y_train]
y = sw * soften(p, T) + (1 - sw) * onehot
import keras
model, _ = steps.build_model(config, 7)
import numpy as _np
if os.environ.get("RESCALE"):
    by = {l.name: l for l in model.layers}
    for l in model.layers:
        if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) and not l.use_bias:
            bn = by[l.name.replace("_conv", "_bn") if l.name.endswith("_conv") else l.name + "_bn"]
            k = l.get_weights()[0]
            sc = _np.sqrt((k.reshape(-1, k.shape[-1]) ** 2).mean(0))
            g, b, m, v = bn.get_weights()
            assert _np.allclose(g, 1) and _np.allclose(m, 0)
            l.set_weights([k / sc]); bn.set_weights([sc.astype(g.dtype), b, m, v])
    print("rescaled", flush=True)
model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
tds, vds = steps.datasets(config, data, y)
def val():
    q = model.predict(data.x_val, batch_size=512, verbose=0)
    return (q.argmax(1) == data.y_val).mean(), (q.argmax(1) == pv.argmax(1)).mean()
print(tag, "start", val(), flush=True)
it = tds.repeat()
done = 0; best = 0
while done < nsteps:
    t0 = time.time()
    h = model.fit(it, steps_per_epoch=50, epochs=1, verbose=0)
    done += 50
    a, ag = val()
    if a > best:
        best = a; model.save_weights(f"{OUT}/{tag}.best.weights.h5")
    print(tag, done, "loss %.4f" % h.history["loss"][-1], "val %.4f agree %.4f" % (a, ag), "%.0fs" % (time.time() - t0), flush=True)
model.save_weights(f"{OUT}/{tag}.last.weights.h5")
