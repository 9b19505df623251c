"""Runtime configuration as typed dataclasses; loading rejects unknown keys and wrong types with
a message that names the file, the key and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from emoedge.core.errors import BadInputError, brief
from emoedge.edge.faces.registry import DETECTORS
from emoedge.edge.outputs.ha_discovery import check_name, check_prefix
from emoedge.edge.outputs.kiosk_screen import parse_size_px
from emoedge.edge.outputs.mqtt_broker import MqttTarget, device_name


class ConfigError(BadInputError):
    """A configuration value that cannot be used; the message names the file and the key (exit 2)."""


DELEGATES = ("cpu", "edgetpu")
SCREENS = ("auto", "kiosk", "debug")
# What a run may do with face images, strictest last. "images": the overlay window and a video
# file when asked for; "no-video": no video file (nothing stored), a window is fine; "no-images":
# neither stored nor shown, and no per-face records (events: a track id, a box, a time), summaries
# only (a classroom sensor). Checked whenever a RuntimeConfig is made or changed (profile, --set, a
# command-line flag, the Python API): a violating one cannot exist, and a change never lowers it.
PRIVACY = ("images", "no-video", "no-images")


def stricter_privacy(a: str, b: str) -> str:
    return a if PRIVACY.index(a) >= PRIVACY.index(b) else b


def lower_privacy(a: str, b: str) -> bool:
    """Whether rule ``a`` is less strict than rule ``b``."""
    return PRIVACY.index(a) < PRIVACY.index(b)


def _check_range(cls_name: str, key: str, value, lo=None, hi=None, lo_open=False, hi_open=False,
                 optional=False) -> None:
    """Raise ConfigError("key 'k': ...") unless ``lo <= value <= hi`` (open ends when asked) and
    ``value`` is finite (``inf`` is no number of days or megabytes)."""
    if value is None and optional:
        return
    if not math.isfinite(value):
        raise ConfigError(f"key '{key}' must be a finite number, got {brief(value)}")
    ok = True
    if lo is not None:
        ok &= value > lo if lo_open else value >= lo
    if hi is not None:
        ok &= value < hi if hi_open else value <= hi
    if not ok:
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        raise ConfigError(f"key '{key}' must be {' and '.join(x for x in (lo_s, hi_s) if x)}, got {brief(value)}")


@dataclass(frozen=True)
class RuntimeConfig:
    source: str = "demo"                  # demo | picamera | camera index | /dev/videoN | GStreamer | file | folder
    model: str = "ferplus7"               # shipped name or a model file (.tflite of any dtype, .onnx); the
                                          # default is edge.shipped.DEFAULT_MODEL (a test holds them equal)
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
    uncertain_below: float | None = None  # smoothed confidence below this -> "uncertain" (None: the model's
                                          # threshold, chosen on validation and kept in its manifest)
    class_prior: str = "model"            # model (its manifest's setting) | trained | balanced | a YAML/JSON file
                                          # of class shares (emoedge.edge.inference.prior)
    class_prior_strength: float = 1.0     # how far to move from the trained mix to class_prior (0..1)
    interval_s: float = 60.0              # aggregation interval for summaries
    events: str | None = None             # JSON Lines event stream path
    events_max_mb: float = 50.0           # rotate the events file at this size (0: never)
    events_keep: int = 4                  # rotated events files kept (events.jsonl.1 .. .N)
    db: str | None = None                 # SQLite summaries path
    video_out: str | None = None          # write overlay frames to this video file (stores images!)
    display: bool = False                 # show a window
    fullscreen: bool = False              # kiosk: full-screen window
    screen: str = "auto"                  # what the window shows: kiosk (the visitor's screen) | debug (the
                                          # overlay) | auto (kiosk full-screen, debug in a window and a video)
    screen_size: str | None = None        # WIDTHxHEIGHT the kiosk screen is drawn at (None: the window's size)
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
    loop: bool = False                    # replay a video file or image folder forever (soak tests, kiosk demos)
    privacy: str = "images"               # images | no-video | no-images (see PRIVACY); profiles set it
    purpose: str | None = None            # why this deployment runs (logged at start, stored with every record)
    jurisdiction: str | None = None       # where it runs (e.g. "EU/DE", "UK", "US-CA"); stored likewise
    require_purpose: bool = False         # refuse to start without purpose and jurisdiction (classroom sensors)
    min_free_mb: float = 50.0             # stop writing records (and say so) below this much free disk space
    retention_days: float | None = None   # delete stored summaries older than this (None: keep all)
    stale_after_s: float = 10.0           # /health reports unhealthy when no frame came for this long
    # interval summaries to an MQTT broker, store-and-forward (emoedge.edge.outputs.mqtt; the [mqtt] extra)
    mqtt: str | None = None               # mqtt://host:port/prefix (mqtts:// for TLS); None: off
    mqtt_device: str | None = None        # the device id in topics (default: the host name)
    mqtt_room: str | None = None          # a room or place name carried in every interval (fleet page groups)
    mqtt_username: str | None = None
    mqtt_password_file: str | None = None  # a file holding the password (or $EMOEDGE_MQTT_PASSWORD)
    mqtt_ca_file: str | None = None       # CA certificate(s) to verify the broker's TLS certificate
    mqtt_outbox: str | None = None        # the store-and-forward SQLite file (default: beside db, or ./)
    mqtt_flush_s: float = 10.0            # at exit, keep sending unacknowledged intervals this long
    mqtt_cert_file: str | None = None     # mutual TLS: this box's client certificate (PEM) ...
    mqtt_key_file: str | None = None      # ... and its private key (both or neither; mqtts://)
    mqtt_ha_discovery: str | None = None  # Home Assistant discovery prefix (homeassistant); None: off

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every value in range, and the privacy rule, whoever set them; raises ConfigError
        naming the key."""
        r = lambda key, *a, **k: _check_range("runtime", key, getattr(self, key), *a, **k)  # noqa: E731
        if self.delegate not in DELEGATES:
            raise ConfigError(f"key 'delegate' must be one of {', '.join(DELEGATES)}, got {brief(self.delegate)}")
        if self.detector not in DETECTORS:
            raise ConfigError(f"key 'detector' must be one of {', '.join(DETECTORS)}, got {brief(self.detector)}")
        if self.screen not in SCREENS:
            raise ConfigError(f"key 'screen' must be one of {', '.join(SCREENS)}, got {brief(self.screen)}")
        if self.screen_size is not None:
            try:
                parse_size_px(self.screen_size)
            except ValueError as exc:
                raise ConfigError(f"key 'screen_size': {exc}") from None
        if self.privacy not in PRIVACY:
            raise ConfigError(f"key 'privacy' must be one of {', '.join(PRIVACY)}, got {brief(self.privacy)}")
        r("threads", 1, 256, optional=True)
        r("min_face_score", 0, 1)
        r("budget_ms", 0, 600_000, lo_open=True)
        r("detect_every", 1, 10_000)
        r("max_faces", 1, 1000)
        r("min_detect_scale", 0, 1, lo_open=True)
        r("max_detect_scale", 0, 1, lo_open=True)
        if self.min_detect_scale > self.max_detect_scale:
            raise ConfigError(f"key 'min_detect_scale' ({self.min_detect_scale}) must not exceed "
                              f"max_detect_scale ({self.max_detect_scale})")
        r("margin", 0, 2)
        r("smoothing_alpha", 0, 1, lo_open=True)
        r("uncertain_below", 0, 1, hi_open=True, optional=True)
        r("class_prior_strength", 0, 1)
        if not self.class_prior or (self.class_prior not in ("model", "trained", "balanced")
                                    and not self.class_prior.endswith((".yaml", ".yml", ".json"))):
            raise ConfigError(f"key 'class_prior' must be model, trained, balanced or a .yaml/.json file of class "
                              f"shares, got {brief(self.class_prior)}")
        r("interval_s", 0, 7 * 86400, lo_open=True)
        r("width", 1, 16384, optional=True)
        r("height", 1, 16384, optional=True)
        r("fps", 0, 1000, lo_open=True, optional=True)
        r("lores_width", 16, 16384)
        r("lores_height", 16, 16384)
        r("max_frames", 0, optional=True)
        r("status_every_s", 0)
        r("metrics_port", 0, 65535, optional=True)
        r("drift_window", 10, 1_000_000)
        r("drift_threshold", 0, 1, lo_open=True)
        r("min_free_mb", 0)
        r("events_max_mb", 0)
        r("events_keep", 1, 1000)
        r("retention_days", 0, lo_open=True, optional=True)
        r("stale_after_s", 0, lo_open=True)
        r("mqtt_flush_s", 0, 3600)
        self._check_mqtt()
        if self.privacy != "images" and self.video_out:
            raise ConfigError(f"key 'video_out': privacy rule {self.privacy!r} forbids storing face images, so no "
                              f"video file ({self.video_out!r} asked for); the rule comes from the profile's "
                              f"deployment (mode sensor, or keep_images false) and no flag or --set relaxes it")
        if self.privacy == "no-images" and (self.display or self.fullscreen):
            raise ConfigError("key 'display': privacy rule 'no-images' (a classroom sensor: deployment mode "
                              "sensor) forbids showing face images, so display and fullscreen must be false")
        if self.privacy == "no-images" and self.events:
            raise ConfigError(f"key 'events': privacy rule 'no-images' (a classroom sensor: deployment mode sensor) "
                              f"keeps no per-face records, and events are per face (a track id, a box, a time; "
                              f"{self.events!r} asked for): the interval summaries go to the SQLite db")

    def _check_mqtt(self) -> None:
        """The broker URL and device id; bounded names; the discovery prefix; client certificate and key
        as a pair over TLS (whether the files exist is checked where they are read: at start, on the box)."""
        target = None
        if self.mqtt is not None:
            try:
                target = MqttTarget.parse(self.mqtt)
                device_name(self.mqtt_device)
            except ValueError as exc:
                raise ConfigError(f"key 'mqtt': {exc}") from None
        for key in ("mqtt_device", "mqtt_room"):
            try:
                check_name(getattr(self, key), f"key '{key}':")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.mqtt_ha_discovery is not None:
            try:
                check_prefix(self.mqtt_ha_discovery)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            given, missing = (("mqtt_cert_file", "mqtt_key_file") if self.mqtt_cert_file else
                              ("mqtt_key_file", "mqtt_cert_file"))
            raise ConfigError(f"key '{given}': a client certificate needs both mqtt_cert_file and mqtt_key_file "
                              f"(--mqtt-cert-file, --mqtt-key-file); {missing} is not set")
        for key, flag in (("mqtt_ha_discovery", "--ha-discovery"), ("mqtt_cert_file", "--mqtt-cert-file")):
            if getattr(self, key) is not None and target is None:
                raise ConfigError(f"key '{key}' ({flag}): needs a broker (key 'mqtt', --mqtt mqtt://host:port/prefix)")
        if self.mqtt_cert_file is not None and not (target.tls or self.mqtt_ca_file):
            raise ConfigError(f"key 'mqtt_cert_file': a client certificate is presented over TLS only: use "
                              f"mqtts:// in key 'mqtt' (got {target})")

    @classmethod
    def from_dict(cls, d: dict, where: str = "configuration") -> RuntimeConfig:
        return build_dataclass(cls, d, where)

    def replace(self, **changes) -> RuntimeConfig:
        """A changed copy; the privacy rule and the need for a purpose (a floor set by a profile)
        only ever get stricter: a change that lowers them is refused."""
        privacy = changes.get("privacy", self.privacy)
        if privacy in PRIVACY and lower_privacy(privacy, self.privacy):
            raise ConfigError(f"key 'privacy': privacy rule {self.privacy!r} is a floor set by the profile's "
                              f"deployment; it cannot be lowered to {privacy!r}")
        if self.require_purpose and not changes.get("require_purpose", True):
            raise ConfigError("key 'require_purpose': this deployment (a classroom sensor) needs a purpose and a "
                              "jurisdiction; that requirement cannot be dropped")
        return dataclasses.replace(self, **changes)


MODES = ("kiosk", "sensor", "dev")


@dataclass(frozen=True)
class Deployment:
    """How a box is deployed (the ``deployment`` section of a profile). Every field does something:
    ``data_dir`` holds the CSV export and the log file (and is the folder install.sh creates and the
    systemd unit may write); ``restart``, ``watchdog_s`` and ``user`` are rendered into the unit by
    ``emoedge profile unit``; ``keep_images`` and ``mode`` set the run's privacy; ``purpose`` and
    ``jurisdiction`` are logged at start and stored with every record."""
    mode: str = "dev"                      # kiosk | sensor | dev
    data_dir: str = "./emoedge-data"       # writable: CSV export, log file (a data partition on a read-only root)
    keep_images: bool = False              # allow a video file of the overlay (never for a classroom sensor)
    export_csv: bool = False               # also write the interval summaries as data_dir/summaries.csv
    export_every_min: float = 60.0         # how often that CSV is rewritten from SQLite (and at the end of a run)
    log_file: str | None = None            # warnings and errors also to data_dir/LOG_FILE, rotated
    log_max_mb: float = 10.0               # log rotation: size per file
    log_keep: int = 5                      # rotated files kept
    restart: str = "on-failure"            # systemd Restart=
    watchdog_s: int = 0                    # systemd WatchdogSec= (0: off)
    user: str = "emoedge"                  # systemd User=
    purpose: str | None = None             # why emotion recognition runs here (see README, Lawful use)
    jurisdiction: str | None = None        # where it runs (e.g. "UK", "US-CA", "EU/DE")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"key 'mode' must be one of {', '.join(MODES)}, got {brief(self.mode)}")
        if self.restart not in ("no", "always", "on-failure", "on-abnormal", "on-abort", "on-watchdog"):
            raise ConfigError(f"key 'restart' must be a systemd Restart= value (no, always, on-failure, "
                              f"on-abnormal, on-abort, on-watchdog), got {brief(self.restart)}")
        _check_range("deployment", "export_every_min", self.export_every_min, 0, lo_open=True)
        _check_range("deployment", "log_max_mb", self.log_max_mb, 0, 10_000, lo_open=True)
        _check_range("deployment", "log_keep", self.log_keep, 0, 1000)
        _check_range("deployment", "watchdog_s", self.watchdog_s, 0, 86400)
        if self.log_file is not None and (not self.log_file or "/" in self.log_file):
            raise ConfigError(f"key 'log_file' must be a file name inside data_dir, got {brief(self.log_file)}")

    def privacy(self) -> str:
        """The privacy rule this deployment imposes on its runtime."""
        if self.mode == "sensor":
            return "no-images"
        return "images" if self.keep_images else "no-video"

    def check_runtime(self, config: RuntimeConfig) -> None:
        """Refuse a runtime configuration below this deployment's rules (the Python API can pair any
        two): its privacy rule and, for a sensor, the need for a purpose and a jurisdiction."""
        if lower_privacy(config.privacy, self.privacy()):
            raise ConfigError(f"key 'privacy': the deployment (mode {self.mode}, keep_images "
                              f"{str(self.keep_images).lower()}) sets privacy rule {self.privacy()!r}; a runtime "
                              f"configuration with {config.privacy!r} cannot run under it")
        if self.mode == "sensor" and not config.require_purpose:
            raise ConfigError("key 'require_purpose': the deployment (mode sensor, a classroom sensor) needs a "
                              "purpose and a jurisdiction; a runtime configuration without require_purpose "
                              "cannot run under it")


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
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type) and origin is None:
        return isinstance(value, tp)
    raise TypeError(f"a configuration field annotated {tp!r}: the type check does not handle it (a bug)")


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
            raise ConfigError(f"{where}: key '{k}' must be {_type_name(hints[k])}, got {brief(v)}")
    try:
        return cls(**d)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def load_yaml(path: str | Path) -> dict:
    """A configuration file (a profile, ``--config``) as hostile input: a regular file of at most
    1 MiB, YAML without anchors or aliases (:mod:`emoedge.core.safeyaml`)."""
    from emoedge.core.fileio import read_small_file
    from emoedge.core.safeyaml import MAX_YAML_BYTES, load_yaml_text

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    raw = read_small_file(p, "a configuration file", MAX_YAML_BYTES, ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    d = load_yaml_text(text, str(p), ConfigError) or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return d


def parse_override(text: str) -> tuple[list[str], Any]:
    """One ``--set`` override, the grammar shared by device profiles and training configs:
    ``a.b=value`` -> ``(["a", "b"], value)``; dots in the key nest, the value is read as YAML
    (``5`` an int, ``true`` a bool, ``[1, 2]`` a list, ``"x"`` or ``x`` a string)."""
    from emoedge.core.safeyaml import load_yaml_text

    key, sep, val = text.partition("=")
    keys = key.strip().split(".")
    shown = text if len(text) <= 120 else text[:120] + f"... ({len(text):,} characters)"
    if not sep or not all(keys):
        raise ConfigError(f"override {shown!r}: expected key=value (dotted for a nested key: section.key=value)")
    return keys, load_yaml_text(val, f"override {key.strip()[:120]!r}: its value", ConfigError)
