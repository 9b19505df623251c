"""Import this before TensorFlow/Keras: it sets the environment TensorFlow reads at import.

On the x86 CPUs this project is developed on, oneDNN corrupts the heap in the backward pass of
1x1 stride-2 convolutions, so oneDNN optimizations are switched off unless the user set the
variable explicitly. The Keras backend is pinned to TensorFlow.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def check_onednn(wanted: bool) -> None:
    """Fail clearly if TensorFlow was already imported with another oneDNN setting."""
    import sys

    if "tensorflow" in sys.modules:
        actual = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0") == "1"
        if actual != wanted:
            raise RuntimeError(
                f"TensorFlow is already imported with TF_ENABLE_ONEDNN_OPTS={int(actual)}; "
                f"set it to {int(wanted)} before TensorFlow is imported (start a new process)")
