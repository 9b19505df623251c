"""Where does the model look? Grad-CAM on a Keras model's last convolutional feature map, the
CBAM model's spatial attention maps, and grids of test faces per class, right and wrong."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emoedge.core.errors import BadInputError
from emoedge.keras import tf_env  # noqa: F401


def last_conv_layer(model):
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            continue
        shape = getattr(layer, "output", None)
        if shape is not None and len(layer.output.shape) == 4 and isinstance(
                layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.Activation,
                        keras.layers.BatchNormalization, keras.layers.Add, keras.layers.Multiply)):
            return layer
    raise BadInputError(f"{model.name}: no convolutional feature map to explain")


def _has_feature_map(model) -> bool:
    try:
        last_conv_layer(model)
        return True
    except ValueError:
        return False


def grad_cam(model, faces: np.ndarray, class_index: int | Sequence[int] | None = None,
             layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM maps in [0, 1], resized to the input (N, H, W), for ``class_index`` (default: the
    predicted class). Changes with the class asked for."""
    import keras
    import tensorflow as tf

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if layer_name is None and members and not _has_feature_map(model):
        # a fused ensemble: the mean of its members' maps (on the face as given) for the ensemble's class
        if class_index is None:
            class_index = np.asarray(model(np.asarray(faces, np.float32), training=False)).argmax(axis=1)
        cams = np.mean([grad_cam(m, faces, class_index) for m in members], axis=0)
        peak = cams.reshape(len(cams), -1).max(axis=1)[:, None, None]
        return np.where(peak > 0, cams / np.maximum(peak, 1e-12), cams).astype(np.float32)
    layer = model.get_layer(layer_name) if layer_name else last_conv_layer(model)
    grad_model = keras.Model(model.inputs, [layer.output, model.output])
    x = tf.convert_to_tensor(np.asarray(faces, dtype=np.float32))
    with tf.GradientTape() as tape:
        fmap, probs = grad_model(x, training=False)
        tape.watch(fmap)
        if class_index is None:
            idx = tf.argmax(probs, axis=1)
        else:
            idx = tf.constant(np.broadcast_to(np.asarray(class_index), (x.shape[0],)), dtype=tf.int64)
        score = tf.gather(probs, idx, axis=1, batch_dims=1)
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    h, w = x.shape[1], x.shape[2]
    out = np.zeros((len(cam), h, w), np.float32)
    for i, c in enumerate(cam):
        c = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
        out[i] = c / c.max() if c.max() > 0 else c
    return out


def attention_maps(model, faces: np.ndarray) -> dict[str, np.ndarray]:
    """The spatial attention of every CBAM block (layers named ``*_spatial``), resized to the input."""
    import keras

    layers = [layer for layer in model.layers if layer.name.endswith("_spatial")]
    if not layers:
        return {}
    m = keras.Model(model.inputs, [layer.output for layer in layers])
    outs = m(np.asarray(faces, np.float32), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    h, w = faces.shape[1:3]
    return {layer.name: np.stack([cv2.resize(np.asarray(o)[i, ..., 0], (w, h)) for i in range(len(faces))])
            for layer, o in zip(layers, outs)}


def overlay(face: np.ndarray, cam: np.ndarray, size: int = 144) -> np.ndarray:
    """A BGR image: the face (float [0,1] or uint8) with the map as a colour heat overlay."""
    f = face[..., 0] if face.ndim == 3 else face
    f = (f * 255).astype(np.uint8) if f.dtype != np.uint8 else f
    f = cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((cv2.resize(cam, (size, size)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR), 0.55, heat, 0.45, 0)


def explain_grid(model, images48: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path,
                 per_class: int = 3, seed: int = 0, attention: str | None = None) -> Path:
    """Per class: ``per_class`` correctly and ``per_class`` wrongly classified faces with Grad-CAM,
    or with the spatial attention of the CBAM block ``attention`` (a ``*_spatial`` layer name; each
    map stretched to its own min..max so its shape is visible). The same seed picks the same faces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoedge.core.preprocess import normalize

    x = normalize(images48)
    probs = np.asarray(model.predict(x, verbose=0))
    pred = probs.argmax(1)
    rng = np.random.default_rng(seed)
    k = len(class_names)
    fig, axes = plt.subplots(k, 2 * per_class, figsize=(2 * per_class * 1.4, k * 1.5), squeeze=False)
    for ci, cname in enumerate(class_names):
        for side, ok in enumerate((True, False)):
            idx = np.flatnonzero((labels == ci) & ((pred == labels) == ok))
            pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
            if not len(pick):
                cams = []
            elif attention:
                cams = attention_maps(model, x[pick])[attention]
                lo, hi = cams.min(axis=(1, 2), keepdims=True), cams.max(axis=(1, 2), keepdims=True)
                cams = (cams - lo) / np.maximum(hi - lo, 1e-6)
            else:
                cams = grad_cam(model, x[pick])
            for j in range(per_class):
                ax = axes[ci][side * per_class + j]
                ax.axis("off")
                if j < len(pick):
                    ax.imshow(cv2.cvtColor(overlay(x[pick[j]], cams[j]), cv2.COLOR_BGR2RGB))
                    ax.set_title(f"{'ok' if ok else 'wrong'}: {class_names[pred[pick[j]]]}", fontsize=7,
                                 color="green" if ok else "red")
        axes[ci][0].text(-10, 72, cname, ha="right", va="center", fontsize=9)
    what = f"CBAM spatial attention `{attention}` (per-face min..max)" if attention else "Grad-CAM"
    fig.suptitle(f"{what}: left right answers, right wrong ones (title = predicted class)", fontsize=9)
    fig.subplots_adjust(left=0.12, wspace=0.05, hspace=0.35)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
