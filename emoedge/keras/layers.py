"""Small custom layers, registered so saved models load without ``safe_mode`` tricks."""

from __future__ import annotations

import keras

from emoedge.keras import tf_env  # noqa: F401


@keras.saving.register_keras_serializable(package="emoedge")
class HorizontalFlip(keras.layers.Layer):
    """Mirror NHWC images left-right (test-time augmentation inside a model)."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="emoedge")
class ChannelPool(keras.layers.Layer):
    """Mean or max over the channel axis, keeping it (CBAM's spatial attention input)."""

    def __init__(self, mode: str = "mean", **kw):
        super().__init__(**kw)
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be mean or max, got {mode!r}")
        self.mode = mode

    def call(self, x):
        f = keras.ops.mean if self.mode == "mean" else keras.ops.max
        return f(x, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="emoedge")
class StackViews(keras.layers.Layer):
    """Stack several views of a batch along the batch axis (view-major: all faces of view 0, then
    all of view 1, ...), so a network runs once on every view and each of its weights is stored
    once in a converted graph (a call per view lets the TFLite int8 converter copy weights)."""

    def call(self, views):
        return keras.ops.concatenate(list(views), axis=0)

    def compute_output_shape(self, input_shapes):
        first = tuple(input_shapes[0])
        return (None,) + first[1:]


@keras.saving.register_keras_serializable(package="emoedge")
class MeanOverViews(keras.layers.Layer):
    """Undo :class:`StackViews` on a network's output: the mean over ``views`` of each face's rows."""

    def __init__(self, views: int, **kw):
        super().__init__(**kw)
        if int(views) < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.views = int(views)

    def call(self, x):
        k = x.shape[-1]
        return keras.ops.mean(keras.ops.reshape(x, (self.views, -1, k)), axis=0)

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "views": self.views}


# the layers above by their registered names, passed to every load (emoedge.keras.io)
CUSTOM = {f"emoedge>{c.__name__}": c for c in (HorizontalFlip, ChannelPool, StackViews, MeanOverViews)}
