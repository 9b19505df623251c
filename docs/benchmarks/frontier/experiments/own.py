"""Issue 20 experiment: the "your own classes" fine-tune (three FER2013 classes, 600 faces each) as it is (base) and
with the master's folded kernels re-parametrized (rescale): each channel's scale moved into its frozen BatchNorm, L2 off.

Kept as it was run for docs/benchmarks/frontier/notes.md (not project code). Args: base|rescale OUT; the export in
$THREE_CLASS (default runs/three_class)."""
# ruff: noqa
import os, sys, time
import numpy as np
from emoedge.data.datasets import load_dataset
from emoedge.train.trainer import TrainConfig, train
from emoedge.train import build as steps  # _start_from lives in train/build.py since issue 29
from emoedge.train.config_file import load_train_config
import dataclasses
mode = sys.argv[1]; out = sys.argv[2]
if mode == "rescale":
    orig = steps._start_from
    def patched(config, k, class_names=None):
        import keras
        model, rebuilt = orig(config, k, class_names)
        layers = model._flatten_layers(include_self=False)
        by = {l.name: l for l in layers}
        n = 0
        for l in layers:
            if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) and not l.use_bias:
                bn = by.get(l.name.replace("_conv", "_bn") if l.name.endswith("_conv") else l.name + "_bn")
                if bn is None or bn.trainable:
                    continue
                k_ = l.get_weights()[0]; sc = np.sqrt((k_.reshape(-1, k_.shape[-1]) ** 2).mean(0))
                g, b, m, v = bn.get_weights(); l.set_weights([k_ / sc]); bn.set_weights([sc.astype(g.dtype), b, m, v])
                l.kernel.regularizer = None; n += 1
        print("rescaled", n, file=sys.stderr)
        return model, rebuilt
    steps._start_from = patched
cfg = load_train_config("default", ["init_from=default"])
ds = load_dataset(os.environ.get("THREE_CLASS", "runs/three_class"))
t0 = time.time()
r = train(cfg, ds, out, verbose=0)
print(mode, "best", r.best_epoch, "/", r.epochs_run, "val %.4f test %.4f" % (r.val.accuracy, r.test.accuracy), "%.1f min" % ((time.time()-t0)/60))
