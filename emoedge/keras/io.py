"""Loading Keras model files with one clear error for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

from emoedge.edge.errors import ModelError
from emoedge.keras import layers as _custom_layers  # noqa: F401  (registers them for loading)
from emoedge.keras import tf_env  # noqa: F401


def load_keras(path: str | Path):
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"{path}: not a loadable Keras model: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


def _float32_config(obj):
    """A Keras config with every dtype policy (``mixed_bfloat16``, ``mixed_float16``, ...) made float32."""
    if isinstance(obj, dict):
        if obj.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
            return {**obj, "config": {**obj["config"], "name": "float32"}}
        return {k: ("float32" if k == "dtype" and isinstance(v, str) and v.startswith("mixed_") else _float32_config(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj


def as_float32(model):
    """``model`` with every layer computing in float32, its weights copied (they are float32 already
    under a mixed policy): what is saved and converted, whatever the training precision. A layer left
    in bfloat16 (e.g. a new head added under the mixed policy) makes the TFLite converter fail."""
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers(include_self=False)):
        return model
    f32 = keras.Model.from_config(_float32_config(model.get_config()))
    f32.set_weights(model.get_weights())
    return f32
