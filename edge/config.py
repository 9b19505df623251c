"""Runtime configuration as typed dataclasses; loading rejects unknown keys and wrong types with
a message that names the file, the key and what is allowed."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class RuntimeConfig:
    source: str = "demo"                  # demo | picamera | camera index | /dev/videoN | GStreamer | file | folder
    model: str = "default"                # shipped name or a model file (.tflite of any dtype, .onnx)
    model_format: str = "int8"            # format of a shipped model (see `emoedge models list`)
    delegate: str = "cpu"                 # cpu | edgetpu
    threads: int | None = None            # interpreter threads (None: the back-end's default)
    detector: str = "haar"                # haar | blazeface | ssd
    detector_dir: str | None = None       # folder with the BlazeFace/SSD files (default: the fetch cache)
    min_face_score: float = 0.5
    budget_ms: float = 66.0               # per-frame latency budget (66 ms ~ 15 FPS)
    detect_every: int = 5                 # run detection every N frames, track in between
    max_faces: int = 4                    # faces classified per frame at most (rotation keeps all fresh)
    adapt: bool = True                    # adapt detection scale / faces / cadence to measured times
    min_detect_scale: float = 0.35
    max_detect_scale: float = 1.0
    margin: float = 0.0                   # grow face boxes by this fraction before the crop
    smoothing_alpha: float = 0.5          # EMA weight of the newest class probabilities
    uncertain_below: float = 0.4          # smoothed confidence below this -> "uncertain"
    interval_s: float = 60.0              # aggregation interval for summaries
    events: str | None = None             # JSON Lines event stream path
    db: str | None = None                 # SQLite summaries path
    video_out: str | None = None          # write overlay frames to this video file (stores images!)
    display: bool = False                 # show a window
    fullscreen: bool = False              # kiosk: full-screen window
    realtime: bool = False                # play video files at their own rate (drop frames when slow)
    width: int | None = None              # camera capture size
    height: int | None = None
    fps: float | None = None
    lores_width: int = 640                # Picamera2 lores (detection) stream size
    lores_height: int = 360
    max_frames: int | None = None
    status_every_s: float = 1.0           # status line period (0: off)
    metrics_port: int | None = None       # health/metrics HTTP endpoint (None: off)
    metrics_host: str = "127.0.0.1"       # loopback only unless configured otherwise
    drift_window: int = 500               # classifications in the drift monitor's window
    drift_threshold: float = 0.1          # JS divergence from the model card's reference that counts as drift

    @classmethod
    def from_dict(cls, d: dict, where: str = "configuration") -> "RuntimeConfig":
        return build_dataclass(cls, d, where)

    def replace(self, **changes) -> "RuntimeConfig":
        return dataclasses.replace(self, **changes)


def _type_ok(value: Any, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def build_dataclass(cls, d: dict, where: str):
    """Instantiate ``cls`` from a mapping, checking keys and value types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys: {', '.join(names)}")
    for k, v in d.items():
        if not _type_ok(v, hints[k]):
            raise ConfigError(f"{where}: key '{k}' must be {_type_name(hints[k])}, got {v!r}")
    return cls(**d)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def load_yaml(path: str | Path) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return d
