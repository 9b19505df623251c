"""What the benchmarks' child processes share: the environment a child Python runs in and the
``emoedge run`` command line as this Python runs it (the soak runs, the fault checks)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def python_env() -> dict:
    """This process's environment for a child Python: oneDNN off and TensorFlow's logging quiet
    unless the caller set them."""
    env = dict(os.environ)
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_command(args: Sequence[str]) -> list[str]:
    """``emoedge run ARGS`` as this Python runs it."""
    return [sys.executable, "-m", "emoedge", "run", *args]
