"""Issue 20 experiment: function matching: the 8-pass teacher online on the same augmented + mixup batch (args: lr steps tag mixup_alpha); needs kd.py's teacher_val.npy. See README.md here."""
# ruff: noqa
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _paths import SHARED, OUT, CONFIGS
import os, sys, time
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
import numpy as np, yaml
from emoedge.data.datasets import load_fer2013_csv
from emoedge.train.augment import make_augmenter
from emoedge.train.trainer import TrainConfig
from emoedge.train import steps
lr = float(sys.argv[1]); nsteps = int(sys.argv[2]); tag = sys.argv[3]; mix = float(sys.argv[4])
cfgd = yaml.safe_load(open(CONFIGS + "/onepass-distill.yaml"))
cfgd["arch_kwargs"] = dict(cfgd["arch_kwargs"], l2=0.0)
cfgd.update(learning_rate=lr, soft_targets_from=None, schedule="constant")
config = TrainConfig.from_dict(cfgd)
ds = load_fer2013_csv(SHARED + "/data/fer2013/fer2013.csv.gz", usage=["Training", "PublicTest"])
data = steps.data_splits(config, ds, None)
import keras, tensorflow as tf
from emoedge.keras.io import load_keras
from emoedge.train.masters import resolve_keras
teacher = load_keras(resolve_keras("default")); teacher.trainable = False
model, _ = steps.build_model(config, 7)
by = {l.name: l for l in model.layers}
for l in model.layers:
    if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) and not l.use_bias:
        bn = by[l.name.replace("_conv", "_bn") if l.name.endswith("_conv") else l.name + "_bn"]
        k = l.get_weights()[0]; sc = np.sqrt((k.reshape(-1, k.shape[-1]) ** 2).mean(0))
        g, b, m, v = bn.get_weights(); l.set_weights([k / sc]); bn.set_weights([sc.astype(g.dtype), b, m, v])
pv = np.load(OUT + "/teacher_val.npy")
def val():
    q = model.predict(data.x_val, batch_size=512, verbose=0)
    return (q.argmax(1) == data.y_val).mean(), (q.argmax(1) == pv.argmax(1)).mean()
print(tag, "start", val(), flush=True)
augment = make_augmenter(config.augment, 3)
opt = keras.optimizers.Adam(lr)
xs = tf.data.Dataset.from_tensor_slices(data.x_train).shuffle(len(data.x_train), seed=3).repeat().batch(128).prefetch(2)
beta = tf.random.Generator.from_seed(5)
@tf.function(jit_compile=False)
def step(x):
    x = augment(x)
    if mix > 0:
        g1 = tf.random.gamma([tf.shape(x)[0], 1, 1, 1], mix, seed=7); g2 = tf.random.gamma([tf.shape(x)[0], 1, 1, 1], mix, seed=8)
        lam = g1 / (g1 + g2)
        x = lam * x + (1 - lam) * tf.reverse(x, [0])
    t = tf.cast(teacher(x, training=False), tf.float32)
    with tf.GradientTape() as tape:
        s = tf.cast(model(x, training=True), tf.float32)
        loss = tf.reduce_mean(tf.reduce_sum(t * (tf.math.log(t + 1e-7) - tf.math.log(s + 1e-7)), -1))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss
it = iter(xs); done = 0; best = 0; t0 = time.time(); ls = []
while done < nsteps:
    ls.append(float(step(next(it)))); done += 1
    if done % 50 == 0:
        a, ag = val()
        if a > best:
            best = a; model.save_weights(f"{OUT}/{tag}.best.weights.h5")
        print(tag, done, "kl %.4f" % np.mean(ls[-50:]), "val %.4f agree %.4f" % (a, ag), "%.0fs" % (time.time() - t0), flush=True)
        t0 = time.time()
