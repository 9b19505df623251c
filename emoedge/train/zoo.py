"""The model zoo: small CNNs for 48x48x1 faces and any number of classes.

* ``small_cnn``: the three-block CNN of the 3-class (happy/neutral/fear) write-up in seeds/.
* ``mini_xception``: a residual depthwise-separable CNN in the spirit of Arriaga et al.'s
  mini-Xception (the ``fer`` package's model), sized for the smallest boards.
* ``vgg``: a VGG-style CNN (double 3x3 conv blocks, batch norm), with an optional CBAM
  channel+spatial attention block after each stage (``vgg_cbam``).

Every builder takes ``num_classes`` and ``input_size`` and returns an uncompiled Keras model
whose input is the preprocessing contract's float32 ``(48, 48, 1)`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from emoedge.core.errors import BadInputError
from emoedge.keras import tf_env  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TF loads)
from emoedge.keras.layers import ChannelPool


def _conv_bn(x, filters, kernel=3, strides=1, name=None, l2=1e-4):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
                      name=None if name is None else name + "_conv")(x)
    x = layers.BatchNormalization(name=None if name is None else name + "_bn")(x)
    return layers.Activation("relu", name=None if name is None else name + "_relu")(x)


def small_cnn(num_classes: int, input_size: int = 48, width: int = 32, dropout: float = 0.5) -> keras.Model:
    """Conv32-Conv64-Conv128 with max-pooling, a 128-unit dense layer and softmax."""
    inp = keras.Input((input_size, input_size, 1), name="face")
    x = inp
    for i, mult in enumerate((1, 2, 4)):
        x = _conv_bn(x, width * mult, name=f"b{i + 1}")
        x = layers.MaxPooling2D(name=f"b{i + 1}_pool")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="small_cnn")


def mini_xception(num_classes: int, input_size: int = 48, widths=(16, 32, 64, 128), stem: int = 8,
                  dropout: float = 0.0, l2: float = 1e-4) -> keras.Model:
    """Residual separable-conv CNN (mini-Xception) ending in GAP over a class-wide conv."""
    reg = keras.regularizers.l2(l2) if l2 else None
    inp = keras.Input((input_size, input_size, 1), name="face")
    x = _conv_bn(inp, stem, name="stem1", l2=l2)
    x = _conv_bn(x, stem, name="stem2", l2=l2)
    for i, f in enumerate(widths):
        name = f"m{i + 1}"
        res = layers.Conv2D(f, 1, strides=2, padding="same", use_bias=False, name=name + "_res")(x)
        res = layers.BatchNormalization(name=name + "_res_bn")(res)
        y = layers.SeparableConv2D(f, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                   pointwise_regularizer=reg, name=name + "_sep1")(x)
        y = layers.BatchNormalization(name=name + "_bn1")(y)
        y = layers.Activation("relu", name=name + "_relu")(y)
        y = layers.SeparableConv2D(f, 3, padding="same", use_bias=False, depthwise_regularizer=reg,
                                   pointwise_regularizer=reg, name=name + "_sep2")(y)
        y = layers.BatchNormalization(name=name + "_bn2")(y)
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=name + "_pool")(y)
        x = layers.Add(name=name + "_add")([y, res])
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Conv2D(num_classes, 3, padding="same", name="class_conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Activation("softmax", name="probs")(x)
    return keras.Model(inp, out, name="mini_xception")


def cbam(x, ratio: int = 8, kernel: int = 7, name: str = "cbam"):
    """Convolutional Block Attention Module: channel attention then spatial attention."""
    channels = x.shape[-1]
    mlp1 = layers.Dense(max(channels // ratio, 4), activation="relu", name=name + "_mlp1")
    mlp2 = layers.Dense(channels, name=name + "_mlp2")
    avg = mlp2(mlp1(layers.GlobalAveragePooling2D(keepdims=True, name=name + "_gap")(x)))
    mx = mlp2(mlp1(layers.GlobalMaxPooling2D(keepdims=True, name=name + "_gmp")(x)))
    ca = layers.Activation("sigmoid", name=name + "_channel")(layers.Add(name=name + "_ca_add")([avg, mx]))
    x = layers.Multiply(name=name + "_ca_mul")([x, ca])
    s_avg = ChannelPool("mean", name=name + "_smean")(x)
    s_max = ChannelPool("max", name=name + "_smax")(x)
    s = layers.Concatenate(name=name + "_scat")([s_avg, s_max])
    sa = layers.Conv2D(1, kernel, padding="same", activation="sigmoid", name=name + "_spatial")(s)
    return layers.Multiply(name=name + "_sa_mul")([x, sa])


def vgg(num_classes: int, input_size: int = 48, widths=(32, 64, 128, 256), dense: int = 256,
        dropout: float = 0.4, attention: bool = False, l2: float = 1e-4, stem: int = 0) -> keras.Model:
    """VGG-style: per stage two 3x3 conv+BN+ReLU, (CBAM), max-pool, spatial dropout; dense head.

    ``stem > 0`` makes stage 1 a single 3x3 conv of that width and a max-pool, so no stage runs
    two convolutions at full resolution (where a small VGG spends most of its time); ``widths``
    are then stages 2, 3, ... Layers keep the names of the full model (``s1a``, ``s2a``, ...), so
    a full model's weights can seed this one (``init_from`` copies layers by name and shape).
    """
    inp = keras.Input((input_size, input_size, 1), name="face")
    x = inp
    first = 1
    if stem:
        x = _conv_bn(x, stem, name="s1a", l2=l2)
        x = layers.MaxPooling2D(name="s1_pool")(x)
        first = 2
    n = len(widths) + first - 1
    for i, f in enumerate(widths, start=first):
        x = _conv_bn(x, f, name=f"s{i}a", l2=l2)
        x = _conv_bn(x, f, name=f"s{i}b", l2=l2)
        if attention:
            x = cbam(x, name=f"s{i}_cbam")
        x = layers.MaxPooling2D(name=f"s{i}_pool")(x)
        x = layers.SpatialDropout2D(0.1 * i / n, name=f"s{i}_drop")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, use_bias=False, kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
                     name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("relu", name="fc_relu")(x)
    x = layers.Dropout(dropout, name="fc_drop")(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="vgg_cbam" if attention else "vgg")


def vgg_cbam(num_classes: int, input_size: int = 48, **kw) -> keras.Model:
    return vgg(num_classes, input_size, attention=True, **kw)


ZOO: dict[str, Callable[..., keras.Model]] = {
    "small_cnn": small_cnn,
    "mini_xception": mini_xception,
    "vgg": vgg,
    "vgg_cbam": vgg_cbam,
}


def build(arch: str, num_classes: int, input_size: int = 48, **kwargs) -> keras.Model:
    """Build a zoo model by name; ``kwargs`` go to the builder (e.g. ``widths``)."""
    try:
        builder = ZOO[arch]
    except KeyError:
        raise BadInputError(f"unknown architecture {arch!r}; choose one of {sorted(ZOO)}") from None
    if num_classes < 2:
        raise BadInputError(f"a classifier needs at least 2 classes, got {num_classes}")
    return builder(num_classes, input_size, **kwargs)
