"""Device profiles (``firmware_configs/*.yaml``): one file sets up a board.

A profile has three parts, each a typed dataclass: ``board`` (what the hardware is and can do),
``runtime`` (the :class:`RuntimeConfig` of ``emoedge run``) and ``deployment`` (kiosk or
classroom sensor: paths, retention, restart policy). ``extends: NAME`` inherits another profile
(mappings merge key by key); command-line ``--set section.key=value`` overrides come last.
Validation names the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emoedge.core.errors import brief
from emoedge.edge.faces.registry import DETECTORS
from emoedge.edge.outputs.mqtt_broker import MqttTarget
from emoedge.edge.runtime.config import (
    DELEGATES,
    MODES,
    PRIVACY,
    ConfigError,
    Deployment,
    RuntimeConfig,
    build_dataclass,
    load_yaml,
    lower_privacy,
    parse_override,
    stricter_privacy,
)


def _profiles_dir() -> Path:
    """``firmware_configs/`` as installed (package ``emoedge.firmware_configs``)."""
    import importlib.util

    spec = importlib.util.find_spec("emoedge.firmware_configs")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the firmware_configs package is not installed with emoedge")
    return Path(list(spec.submodule_search_locations)[0])


PROFILES_DIR = _profiles_dir()
CAMERAS = ("picamera2", "v4l2", "usb", "file", "none")
__all__ = ["Board", "Deployment", "Profile", "load_profile", "list_profiles", "profile_path", "validate", "MODES"]


@dataclass(frozen=True)
class Board:
    name: str = "generic"
    model_match: str = ""                  # prefix of /proc/device-tree/model ("" = any / not a Pi)
    arch: str = "aarch64"
    cores: int = 4
    memory_mb: int = 1024
    camera: str = "picamera2"
    delegates: list = field(default_factory=lambda: ["cpu"])
    # estimated per-frame detection time (ms) at the profile's lores size, per detector; used to
    # refuse budgets that cannot hold. Estimates, not measurements, unless the profile says so.
    detector_ms: dict = field(default_factory=dict)
    # estimated time (ms) per face of each shipped CPU model (int8, the profile's threads); with
    # detector_ms it says which model fits the frame budget with max_faces faces in view
    classifier_ms: dict = field(default_factory=dict)
    notes: str = ""
    # what of this profile has never been run here, and what it needs (``emoedge doctor`` warns with it)
    untested: str = ""

    def __post_init__(self) -> None:
        if self.cores < 1 or self.memory_mb < 1:
            raise ConfigError(f"key '{'cores' if self.cores < 1 else 'memory_mb'}' must be at least 1")
        for k, v in self.detector_ms.items():
            if k not in DETECTORS:
                raise ConfigError(f"key 'detector_ms.{k}': not a detector (one of {', '.join(DETECTORS)})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"key 'detector_ms.{k}' must be a positive number of milliseconds, got {brief(v)}")
        from emoedge.core.shipped import SHIPPED

        for k, v in self.classifier_ms.items():
            if k not in SHIPPED:
                raise ConfigError(f"key 'classifier_ms.{k}': not a shipped model (one of {', '.join(SHIPPED)})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"key 'classifier_ms.{k}' must be a positive number of milliseconds, got {brief(v)}")


@dataclass(frozen=True)
class Profile:
    name: str
    path: str
    board: Board
    runtime: RuntimeConfig
    deployment: Deployment

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "board": dataclasses.asdict(self.board),
                "runtime": dataclasses.asdict(self.runtime), "deployment": dataclasses.asdict(self.deployment)}


def profile_path(name_or_path: str | Path, search: Path = PROFILES_DIR) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"{p}: profile file not found")
        return p
    cand = search / f"{name_or_path}.yaml"
    if not cand.is_file():
        have = sorted(q.stem for q in search.glob("*.yaml"))
        raise ConfigError(f"{name_or_path}: no such profile in {search} (have: {', '.join(have)})")
    return cand


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _raw(path: Path, seen: tuple[Path, ...] = (), chain: list | None = None) -> dict:
    """The merged settings of ``path`` and the profiles it extends; each file's own settings are
    appended to ``chain`` (when given), the file it extends first."""
    chain = [] if chain is None else chain
    if path.resolve() in seen:
        loop = " -> ".join(str(p) for p in seen + (path,))
        raise ConfigError(f"{path}: profile inheritance loops: {loop}")
    d = load_yaml(path)
    parent = d.pop("extends", None)
    if parent is None:
        chain.append((path, d))
        return d
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: key 'extends' must be a profile name, got {brief(parent)}")
    try:
        ppath = profile_path(parent, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: key 'extends': {exc}") from None
    merged = _merge(_raw(ppath, seen + (path.resolve(),), chain), d)
    chain.append((path, d))
    return merged


def _section(d: dict, name: str) -> dict:
    sec = d.get(name)
    return sec if isinstance(sec, dict) else {}


def _floor(chain: list) -> tuple[str, Path | None, Path | None]:
    """What the files of a profile require, which nothing below them (a profile that extends them,
    --set, a flag) may lower: the strictest privacy rule one of them sets (``runtime.privacy``, or
    ``deployment.mode: sensor``), the file that sets it, and the file that makes it a sensor."""
    privacy, by, sensor = "images", None, None
    for path, d in chain:
        own = _section(d, "runtime").get("privacy")
        if _section(d, "deployment").get("mode") == "sensor":
            sensor, own = path, "no-images"
        if own in PRIVACY and lower_privacy(privacy, own):
            privacy, by = own, path
    return privacy, by, sensor


def _check_floor(where: str, chain: list, deployment: Deployment, privacy: str) -> None:
    """Refuse settings that lower the floor of :func:`_floor`, naming the rule and its file."""
    need, by, sensor = _floor(chain)
    if sensor is not None and deployment.mode != "sensor":
        raise ConfigError(f"{where}: deployment.mode: {sensor} is a classroom sensor (mode sensor): its privacy "
                          f"rule 'no-images' and its need for a purpose and a jurisdiction are a floor that no "
                          f"profile extending it and no --set can lower (mode {deployment.mode!r} asked for)")
    if lower_privacy(privacy, need):
        raise ConfigError(f"{where}: runtime.privacy: {by} sets privacy rule {need!r}, a floor that no profile "
                          f"extending it and no --set can lower ({privacy!r} asked for)")


def load_profile(name_or_path: str | Path, overrides: Sequence[str] = (), search: Path = PROFILES_DIR) -> Profile:
    path = profile_path(name_or_path, search)
    chain: list = []
    d = _raw(path, chain=chain)
    for ov in overrides:
        keys, val = parse_override(ov)
        if len(keys) != 2:
            raise ConfigError(f"override {ov!r}: expected section.key=value with section board, runtime or deployment")
        d = _merge(d, {keys[0]: {keys[1]: val}})
    where = str(path)
    unknown = sorted(set(d) - {"board", "runtime", "deployment", "description"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; allowed: board, runtime, deployment, description")
    board = build_dataclass(Board, d.get("board") or {}, f"{where}: board")
    deployment = build_dataclass(Deployment, d.get("deployment") or {}, f"{where}: deployment")
    rt = d.get("runtime") or {}
    if not isinstance(rt, dict):
        raise ConfigError(f"{where}: runtime: expected a mapping of settings, got {type(rt).__name__}")
    rt = dict(rt)
    # the deployment's rules travel with the runtime configuration, so no later change (a flag,
    # --set, the Python API) can undo them: privacy only ever gets stricter
    if rt.get("privacy", "images") in PRIVACY:
        rt["privacy"] = stricter_privacy(rt.get("privacy", "images"), deployment.privacy())
        _check_floor(where, chain, deployment, rt["privacy"])
    for k in ("purpose", "jurisdiction"):
        if getattr(deployment, k) is not None:
            rt[k] = getattr(deployment, k)
    if deployment.mode == "sensor":
        rt["require_purpose"] = True
    runtime = build_dataclass(RuntimeConfig, rt, f"{where}: runtime")
    prof = Profile(path.stem, where, board, runtime, deployment)
    validate(prof)
    return prof


def validate(p: Profile) -> None:
    """Values that are each well-typed but impossible together."""
    w, b, r, dep = p.path, p.board, p.runtime, p.deployment

    def bad(key: str, msg: str) -> None:
        raise ConfigError(f"{w}: {key}: {msg}")

    if b.camera not in CAMERAS:
        bad("board.camera", f"{b.camera!r} is not one of {', '.join(CAMERAS)}")
    for d in b.delegates:
        if d not in DELEGATES:
            bad("board.delegates", f"{d!r} is not one of {', '.join(DELEGATES)}")
    if r.delegate not in b.delegates:
        bad("runtime.delegate", f"{r.delegate!r} is not available on {b.name} (allowed: {', '.join(b.delegates)})")
    need = b.detector_ms.get(r.detector)
    if need is not None and r.budget_ms < float(need) * r.min_detect_scale ** 2:
        bad("runtime.budget_ms", f"{r.budget_ms:g} ms is below what {r.detector} needs on {b.name} even at the "
                                 f"smallest detection scale ({float(need) * r.min_detect_scale ** 2:.0f} ms of "
                                 f"{need} ms at full scale); raise the budget or choose another detector "
                                 f"(estimates: {b.detector_ms})")
    per_face = b.classifier_ms.get(str(r.model)) if r.model_format != "edgetpu" else None
    if per_face is not None:
        frame = float(need) / max(1, r.detect_every) if need is not None else 0.0
        if frame + float(per_face) > r.budget_ms:
            bad("runtime.model", f"{r.model} takes ~{per_face:g} ms per face on {b.name}: with {r.detector} "
                                 f"(~{frame:.0f} ms per frame, detecting every {r.detect_every}) not even one face "
                                 f"fits {r.budget_ms:g} ms; choose a model that fits (estimates: {b.classifier_ms}) "
                                 "or raise the budget")
    if r.threads is not None and not 1 <= r.threads <= b.cores:
        bad("runtime.threads", f"{r.threads} threads on a {b.cores}-core {b.name}; allowed 1..{b.cores}")
    if r.source in ("picamera", "picamera2") and b.camera != "picamera2":
        bad("runtime.source", f"picamera on {b.name}, whose camera stack is {b.camera}")
    if dep.mode == "sensor":
        if dep.keep_images:
            bad("deployment.keep_images", "privacy rule: a classroom sensor keeps no face images "
                                          "(keep_images must be false)")
        if not r.db:
            bad("runtime.db", "a classroom sensor stores interval summaries: set a SQLite path")
    if dep.mode == "kiosk" and not (r.display or r.fullscreen):
        bad("runtime.fullscreen", "a kiosk shows the overlay: set fullscreen (or display) true")


def list_profiles(search: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in search.glob("*.yaml") if not p.stem.startswith("_"))


UNITS_DIR_NAME = "systemd"


def render_unit(profile: Profile, template: str, prefix: str = "/opt/emoedge", overrides: Sequence[str] = ()) -> str:
    """A systemd unit for ``profile`` from a template (``deploy/systemd/*.service``): the
    deployment's ``restart``, ``watchdog_s``, ``user`` and ``data_dir`` become ``Restart=``,
    ``WatchdogSec=`` (with ``Type=notify``; 0 removes both), ``User=``, ``WorkingDirectory=`` and
    ``ReadWritePaths=``; ``ExecStart`` runs ``emoedge run --profile`` with the profile's path and
    the same ``--set`` overrides (e.g. the purpose and jurisdiction). ``RestartPreventExitStatus=2``:
    a bad configuration (exit 2) is not restarted in a loop; a lost camera (3) or a full disk (4) is."""
    import shlex

    d = profile.deployment
    builtin = Path(profile.path).resolve().parent == PROFILES_DIR.resolve()
    args = ["--profile", profile.name if builtin else str(Path(profile.path).resolve())]
    for ov in overrides:
        args += ["--set", ov]
    exec_start = f"{prefix}/venv/bin/emoedge run " + " ".join(shlex.quote(a) for a in args)
    out, in_service = [], False
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if line.strip().startswith("["):
            if in_service:
                tail = []
                while out and not out[-1].strip():
                    tail.append(out.pop())
                out += _service_extras(d, out) + tail
            in_service = line.strip() == "[Service]"
        if key in ("Restart", "WatchdogSec", "User", "WorkingDirectory", "ReadWritePaths", "ExecStart", "Type",
                   "NotifyAccess", "RestartPreventExitStatus"):
            continue
        if key == "IPAddressAllow" and profile.runtime.mqtt:
            line = f"{line.rstrip()} {' '.join(broker_addresses(profile.runtime.mqtt))}"
        out.append(line)
        if line.strip() == "[Service]":
            out += [f"Type={'notify' if d.watchdog_s else 'simple'}", f"User={d.user}",
                    f"WorkingDirectory={d.data_dir}", f"ExecStart={exec_start}", f"Restart={d.restart}",
                    "RestartPreventExitStatus=2"]
            if d.watchdog_s:
                out += ["NotifyAccess=main", f"WatchdogSec={d.watchdog_s}"]
    return "\n".join(out) + "\n"


def broker_addresses(mqtt: str) -> list[str]:
    """The IP addresses of the MQTT broker of ``runtime.mqtt``, for a unit's ``IPAddressAllow=``
    (systemd takes addresses, not names: a name is resolved now, when the unit is rendered)."""
    import ipaddress
    import socket

    host = MqttTarget.parse(mqtt).host
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ConfigError(f"runtime.mqtt: the broker {host!r} does not resolve ({exc}), so the unit cannot allow "
                          f"its address (IPAddressAllow): give its IP address in the URL") from None
    return sorted({info[4][0] for info in infos})


def _service_extras(d: Deployment, lines: list[str]) -> list[str]:
    """``ReadWritePaths`` for a unit that makes the file system read-only."""
    if any(ln.strip().startswith("ProtectSystem=strict") for ln in lines):
        return [f"ReadWritePaths={d.data_dir}"]
    return []


def resolve_run_config(config_file: str | Path | None = None, profile: str | Path | None = None,
                       overrides: Sequence[str] = (), flags: dict | None = None
                       ) -> tuple[RuntimeConfig, Deployment | None]:
    """The configuration of a run, as ``emoedge run`` builds it: a profile (with its ``--set``
    overrides) or a runtime YAML or the defaults, then the command-line ``flags`` (RuntimeConfig
    field -> value), checked together (ranges, the profile's privacy rule: a flag never relaxes
    it). Returns the runtime configuration and the profile's deployment (None without a profile)."""
    deployment = None
    base = RuntimeConfig.from_dict(load_yaml(config_file), str(config_file)) if config_file else RuntimeConfig()
    where = str(config_file) if config_file else "defaults"
    if profile:
        prof = load_profile(profile, overrides=overrides)
        base, deployment, where = prof.runtime, prof.deployment, prof.path
    elif overrides:
        raise ConfigError("--set overrides a profile's values: give --profile (or use the matching flag)")
    flags = flags or {}
    try:
        return base.replace(**flags), deployment
    except ConfigError as exc:
        names = ", ".join("--" + k.replace("_", "-") for k in flags)
        raise ConfigError(f"{where} with command-line {names}: {exc}") from None


def resolved_settings(name_or_path: str | Path, overrides: Sequence[str] = (), search: Path = PROFILES_DIR) -> dict:
    """The settings of a profile as one mapping without ``extends`` (the profiles it extends merged in, then
    the ``--set`` style ``overrides``): a self-contained profile file for one device (``emoedge firstboot``
    writes one). Load it with :func:`load_profile` to validate it."""
    d = _raw(profile_path(name_or_path, search))
    for ov in overrides:
        keys, val = parse_override(ov)
        if len(keys) != 2:
            raise ConfigError(f"override {ov!r}: expected section.key=value with section board, runtime or deployment")
        d = _merge(d, {keys[0]: {keys[1]: val}})
    return d
