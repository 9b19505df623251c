"""The TFLite interpreter choice (emoedge.edge.engines.interpreter): LiteRT, the Edge TPU delegate, the fallback."""

import pytest

from emoedge.core.errors import ModelError
from emoedge.edge.engines.interpreter import make_interpreter


def test_edgetpu_delegate_absent_is_a_clear_error(tiny_tflite):
    with pytest.raises(ModelError, match="Edge TPU delegate was asked for"):
        make_interpreter(tiny_tflite, delegate="edgetpu")
    with pytest.raises(ValueError, match="delegate must be"):
        make_interpreter(tiny_tflite, delegate="gpu")


def test_backend_choice_is_said_and_fallback_is_explicit(tiny_tflite, monkeypatch):
    import builtins

    _, choice = make_interpreter(tiny_tflite)
    assert choice.backend == "litert" and choice.reason == "LiteRT is installed"
    real_import = builtins.__import__

    def no_litert(name, *a, **k):
        if name.startswith("ai_edge_litert") or name.startswith("tflite_runtime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name, *a: no_litert(name))
    with pytest.raises(ModelError, match="no TFLite interpreter is installed.*pip install ai-edge-litert"):
        make_interpreter(tiny_tflite)
