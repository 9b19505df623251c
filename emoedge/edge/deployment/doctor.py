"""``emoedge doctor``: what this board is and whether it can run the chosen profile and model.

Every check reads files under ``root`` (``/`` on a device; a fake tree in tests), so it runs
anywhere and probes nothing at import time. Each problem comes with its fix.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from emoedge.core.shipped import DEFAULT_MODEL

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
CORAL_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # Global Unichip (before firmware load), Google (after)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {OK: "ok  ", INFO: "info", WARN: "WARN", FAIL: "FAIL"}[self.status]
        return f"[{mark}] {self.name}: {self.detail}" + (f"\n       fix: {self.fix}" if self.fix else "")


def _read(root: Path, rel: str) -> str | None:
    p = root / rel.lstrip("/")
    try:
        return p.read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def board_model(root: Path) -> str | None:
    return _read(root, "/proc/device-tree/model")


def check_board(root: Path) -> Check:
    model = board_model(root)
    if model:
        return Check("board", INFO, model)
    return Check("board", INFO, f"no /proc/device-tree/model: not a Raspberry Pi or Coral board "
                                f"({platform.machine()}, {os.cpu_count()} cores)")


def check_camera(root: Path, have_picamera2: bool | None = None) -> list[Check]:
    if have_picamera2 is None:
        have_picamera2 = importlib.util.find_spec("picamera2") is not None
    out = []
    is_pi = (board_model(root) or "").startswith("Raspberry Pi")
    if have_picamera2:
        out.append(Check("pi camera stack", OK, "Picamera2 is importable"))
    elif is_pi:
        out.append(Check("pi camera stack", FAIL, "Picamera2 is not importable",
                         "sudo apt install -y python3-picamera2, and make the venv with --system-site-packages"))
    else:
        out.append(Check("pi camera stack", INFO, "no Pi camera stack (Picamera2 not installed; not a Raspberry Pi)"))
    dev = root / "dev"
    videos = sorted(p.name for p in dev.glob("video*")) if dev.is_dir() else []
    out.append(Check("v4l2 cameras", OK if videos else INFO,
                     ", ".join(f"/dev/{v}" for v in videos) if videos else "no /dev/video* device"))
    return out


def check_edgetpu(root: Path) -> Check:
    usb = []
    base = root / "sys/bus/usb/devices"
    if base.is_dir():
        for d in base.iterdir():
            vid, pid = _read(d, "idVendor"), _read(d, "idProduct")
            if (vid, pid) in CORAL_USB_IDS:
                usb.append(d.name)
    pcie = (root / "dev/apex_0").exists()
    libs = [p for pat in ("usr/lib/*/libedgetpu.so.1", "usr/lib/libedgetpu.so.1") for p in root.glob(pat)]
    where = ([f"USB accelerator at {', '.join(usb)}"] if usb else []) + (["PCIe/M.2 /dev/apex_0"] if pcie else [])
    if not where:
        return Check("edge tpu", INFO, "no Edge TPU found (no Coral USB device, no /dev/apex_0)")
    if not libs:
        return Check("edge tpu", FAIL, f"{'; '.join(where)} but no libedgetpu runtime",
                     "install the Edge TPU runtime: sudo apt install libedgetpu1-std (Coral's apt repository)")
    return Check("edge tpu", OK, f"{'; '.join(where)}; runtime {libs[0]}")


def check_cpu(root: Path) -> list[Check]:
    out = []
    gov = _read(root, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov is None:
        out.append(Check("cpu governor", INFO, "not readable"))
    elif gov in ("performance", "ondemand", "schedutil"):
        out.append(Check("cpu governor", OK, gov))
    else:
        out.append(Check("cpu governor", WARN, f"{gov}: the CPU may stay slow under load",
                         "echo ondemand | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    temp = _read(root, "/sys/class/thermal/thermal_zone0/temp")
    if temp and temp.lstrip("-").isdigit():
        c = int(temp) / 1000
        if c >= 80:
            out.append(Check("temperature", WARN, f"{c:.1f} C: at or near the throttling point",
                             "add a heatsink or fan; check the case's airflow"))
        else:
            out.append(Check("temperature", OK, f"{c:.1f} C"))
    thr = _read(root, "/sys/devices/platform/soc/soc:firmware/get_throttled")
    if thr is not None:
        try:
            v = int(thr, 16)
        except ValueError:
            v = None
        if v is None:
            out.append(Check("throttling", INFO, f"unreadable value {thr!r}"))
        elif v & 0x5:
            what = ", ".join(n for bit, n in ((0x1, "under-voltage now"), (0x4, "throttled now")) if v & bit)
            out.append(Check("throttling", FAIL, f"{what} (0x{v:x})",
                             "use the official power supply (5V/3A Pi 4, 5V/5A Pi 5) and cool the board"))
        elif v & 0x50000:
            out.append(Check("throttling", WARN, f"under-voltage or throttling happened since boot (0x{v:x})",
                             "check the power supply and cooling"))
        else:
            out.append(Check("throttling", OK, "none since boot"))
    return out


def check_interpreters() -> list[Check]:
    out = []
    litert = importlib.util.find_spec("ai_edge_litert") is not None
    tfl = importlib.util.find_spec("tflite_runtime") is not None
    if litert:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("ai-edge-litert")
        except PackageNotFoundError:
            v = "?"
        out.append(Check("tflite interpreter", OK, f"LiteRT {v} (XNNPACK applied to float and int8 models)"))
    elif tfl:
        out.append(Check("tflite interpreter", WARN, "only tflite_runtime: int8 runs without XNNPACK (~18x slower)",
                         "pip install ai-edge-litert"))
    else:
        out.append(Check("tflite interpreter", FAIL, "no TFLite interpreter installed", "pip install ai-edge-litert"))
    ort = importlib.util.find_spec("onnxruntime") is not None
    out.append(Check("onnx runtime", OK if ort else INFO,
                     "installed" if ort else "not installed (only for .onnx models)"))
    return out


def check_model(model: str, fmt: str, delegate: str = "cpu") -> Check:
    from emoedge.core.errors import ModelError
    from emoedge.core.shipped import resolve_model
    from emoedge.edge.inference.classify import FaceClassifier

    try:
        path = resolve_model(model, fmt)
        clf = FaceClassifier(path, delegate=delegate)
    except (ModelError, ValueError, OSError) as exc:
        fix = ("run `emoedge convert --to edgetpu` on a machine with edgetpu_compiler and copy the file"
               if fmt == "edgetpu" else "check the model name/format (`emoedge models list`)")
        return Check("model", FAIL, str(exc), fix)
    return Check("model", OK, f"{path.name}: manifest matches the model; classes {', '.join(clf.class_names)}")


def check_profile(profile: str, root: Path, overrides=()) -> tuple[list[Check], object]:
    from emoedge.edge.deployment.profiles import load_profile
    from emoedge.edge.runtime.config import ConfigError

    try:
        prof = load_profile(profile, overrides=overrides)
    except ConfigError as exc:
        return [Check("profile", FAIL, str(exc), "fix the profile (`emoedge profile check FILE`)")], None
    out = [Check("profile", OK, f"{prof.path} ({prof.board.name}, {prof.deployment.mode} mode)")]
    r = prof.runtime
    if r.require_purpose and not (r.purpose and r.jurisdiction):
        out.append(Check("lawful use", FAIL, "this profile does not start until deployment.purpose and "
                                             "deployment.jurisdiction are set (EU AI Act Art. 5(1)(f): emotion "
                                             "recognition in education institutions and workplaces is prohibited "
                                             "except for medical or safety reasons)",
                         "install.sh --purpose '...' --jurisdiction XX, or --set deployment.purpose=... "
                         "--set deployment.jurisdiction=... (README.md, Lawful use)"))
    elif r.purpose or r.jurisdiction:
        out.append(Check("lawful use", INFO, f"purpose: {r.purpose or '-'}; jurisdiction: {r.jurisdiction or '-'}"))
    out.append(Check("privacy", INFO,
                     {"images": "a video file of the overlay may be written when asked for",
                      "no-video": "no video file is written (the overlay may be shown)",
                      "no-images": "no face image is stored or shown, whatever the flags"}[r.privacy]))
    if prof.board.untested:
        out.append(Check("untested", WARN, f"UNTESTED profile: {prof.board.untested}",
                         "measure it on the board before relying on it (emoedge bench board --write-profile)"))
    model = board_model(root) or ""
    if prof.board.model_match and not model.startswith(prof.board.model_match):
        out.append(Check("profile board", WARN, f"the profile is for {prof.board.name!r} but this board is "
                                                f"{model or 'not a Pi/Coral'}", "choose the profile of this board"))
    return out, prof


def diagnose(root: str | Path = "/", profile: str | None = None, model: str | None = None,
             model_format: str | None = None, have_picamera2: bool | None = None,
             overrides=()) -> list[Check]:
    root = Path(root)
    checks = [check_board(root), *check_camera(root, have_picamera2), check_edgetpu(root), *check_cpu(root),
              *check_interpreters()]
    prof = None
    if profile:
        pc, prof = check_profile(profile, root, overrides)
        checks += pc
    m = model or (prof.runtime.model if prof else DEFAULT_MODEL)
    f = model_format or (prof.runtime.model_format if prof else "int8")
    d = prof.runtime.delegate if prof else "cpu"
    tpu = next(c for c in checks if c.name == "edge tpu")
    if d == "edgetpu" and tpu.status != OK:
        checks.append(Check("delegate", FAIL, "the profile uses the Edge TPU but none is usable here",
                            tpu.fix or "plug in the Coral accelerator, or use a cpu profile"))
        d = "cpu"
    checks.append(check_model(m, f, "cpu" if f != "edgetpu" else d))
    return checks
