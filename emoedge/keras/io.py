"""Loading Keras model files with one clear error for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

from emoedge.core.errors import ModelError
from emoedge.keras import layers as _custom_layers
from emoedge.keras import tf_env  # noqa: F401

# what keras says when safe mode stops a layer whose Python code would run at load (a Lambda's)
_UNSAFE_MARK = "safe_mode"


def load_keras(path: str | Path):
    """The model in ``path``, loaded in Keras's safe mode with the project's own layers registered:
    a file whose layers carry Python code (a Lambda layer) is refused before that code runs. No
    option relaxes this: no model of this project needs it (a Lambda is rebuilt as a registered layer)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True, custom_objects=_custom_layers.CUSTOM)
    except Exception as exc:  # keras raises many types for a bad file
        if _UNSAFE_MARK in str(exc):
            raise ModelError(f"{path}: refused: the model holds Python code (a Lambda layer) that would run when "
                             f"it is loaded; emoedge loads only models made of Keras's layers and its own "
                             f"(emoedge.keras.layers)") from None
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
