"""What machine a benchmark ran on: CPU, cores, board, governor, Python and library versions,
and the project's git revision. Read when a benchmark runs, never at import."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBS = ("numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu",
        "tensorflow", "emoedge")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip("\x00\n ")
    except OSError:
        return None


def git_revision(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def dirty_warning(revision: str | None) -> str | None:
    """The loud line a result written from a working tree with uncommitted changes carries (None if clean)."""
    if not str(revision or "").endswith("-dirty"):
        return None
    return (f"WARNING: written from a working tree with uncommitted changes (git {revision}): these numbers "
            "belong to no commit. A committed benchmark must name a clean revision: re-run from a clean checkout.")


def machine_info() -> dict:
    libs = {}
    for name in LIBS:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
        "board": _read("/proc/device-tree/model"),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "os": platform.platform(), "python": platform.python_version(), "libraries": libs,
        "git_revision": git_revision(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike ``ru_maxrss``, which Linux carries across
    ``execve`` from the parent (a child of a big process reports the parent's peak), VmHWM belongs
    to this process image alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
