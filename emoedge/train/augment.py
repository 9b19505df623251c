"""Training-time augmentation: the options (:class:`Augment`) and the TensorFlow transform built from
them. TensorFlow is imported inside :func:`make_augmenter`: the options are read before it loads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augment:
    """Random training-time transforms (0 switches one off)."""
    flip: bool = True
    rotation_deg: float = 12.0
    zoom: float = 0.12          # +- fraction (zoom in/out, i.e. crop/pad)
    shift: float = 0.08         # +- fraction of width/height
    brightness: float = 0.15    # +- in [0,1] pixel units
    contrast: float = 0.25      # +- factor
    blur_prob: float = 0.1      # probability of a 3x3 Gaussian blur
    erase_prob: float = 0.25    # probability of erasing a random rectangle (cutout)


def make_augmenter(aug: Augment, seed: int):
    """A function (batch float32 (B,48,48,1) in [0,1]) -> augmented batch, in TensorFlow ops."""
    import keras
    import tensorflow as tf

    geo = []
    if aug.flip:
        geo.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation_deg:
        geo.append(keras.layers.RandomRotation(aug.rotation_deg / 360.0, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        geo.append(keras.layers.RandomZoom((-aug.zoom, aug.zoom), fill_mode="reflect", seed=seed + 2))
    if aug.shift:
        geo.append(keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="reflect", seed=seed + 3))
    geo_model = keras.Sequential(geo) if geo else None
    kernel = tf.constant(np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32)[:, :, None, None] / 16.0)
    gen = tf.random.Generator.from_seed(seed + 4)

    def apply(x):
        b = tf.shape(x)[0]
        if geo_model is not None:
            x = geo_model(x, training=True)
        if aug.brightness:
            x = x + gen.uniform((b, 1, 1, 1), -aug.brightness, aug.brightness)
        if aug.contrast:
            mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
            x = (x - mean) * gen.uniform((b, 1, 1, 1), 1 - aug.contrast, 1 + aug.contrast) + mean
        if aug.blur_prob:
            blurred = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), kernel, 1, "VALID")
            x = tf.where(gen.uniform((b, 1, 1, 1)) < aug.blur_prob, blurred, x)
        if aug.erase_prob:
            h = tf.shape(x)[1]
            w = tf.shape(x)[2]
            size = tf.cast(tf.cast(h, tf.float32) * gen.uniform((b, 1, 1), 0.15, 0.35), tf.int32)
            cy = gen.uniform((b, 1, 1), 0, 1) * tf.cast(h, tf.float32)
            cx = gen.uniform((b, 1, 1), 0, 1) * tf.cast(w, tf.float32)
            yy = tf.cast(tf.range(h), tf.float32)[None, :, None]
            xx = tf.cast(tf.range(w), tf.float32)[None, None, :]
            half = tf.cast(size, tf.float32) / 2
            inside = (tf.abs(yy - cy) < half) & (tf.abs(xx - cx) < half)
            do = gen.uniform((b, 1, 1)) < aug.erase_prob
            fill = gen.uniform((b, 1, 1), 0, 1)
            x = tf.where((inside & do)[..., None], fill[..., None], x)
        return tf.clip_by_value(x, 0.0, 1.0)

    return apply
