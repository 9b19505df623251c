"""Small custom layers, registered so saved models load without ``safe_mode`` tricks."""

from __future__ import annotations

from emoedge.train import tf_env  # noqa: F401

import keras


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
