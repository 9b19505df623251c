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
