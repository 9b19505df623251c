"""``emoedge firstboot``: apply the first-boot file ``emoedge.yaml`` of the SD card's boot partition.

Run by ``emoedge-firstboot.service`` at every boot; it re-applies only when the file changed (its
sha256 differs from the last applied one, in ROOT/var/lib/emoedge/firstboot.sha256) or a new MQTT
password file was put beside it. A file is checked completely first (its own schema, then the checks
of ``emoedge profile check`` on the profile with the file's settings, then the unit's); every problem
is reported, on the console and in BOOT/emoedge-firstboot.txt, and a bad file changes nothing but
the gate: the emoedge service is disabled and its start condition (ROOT/etc/emoedge/firstboot.ok)
removed, so it stays off until a good file is applied. A good file becomes:

- ROOT/etc/emoedge/device.yaml: the profile with the file's settings, as one self-contained profile
  (``emoedge run --profile /etc/emoedge/device.yaml``; ``emoedge doctor --profile`` the same);
- the systemd unit rendered from deploy/systemd's template by :func:`profiles.render_unit`, gated on
  the first-boot unit, and enabled (the ``*.target.wants`` link written here);
- host name, /etc/hosts, time zone, Wi-Fi, root's SSH keys (:mod:`.firstboot_apply`);
- the MQTT password file moved off the boot partition to ROOT/etc/emoedge/mqtt-password (0600, the
  service's user): FAT has no permissions, so every local user (and anyone holding the card) can read
  it there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from emoedge.core.errors import EXIT_BAD_INPUT, EXIT_OK, WriteError
from emoedge.edge.deployment.firstboot_apply import DEVICE_PROFILE, MARKER, SERVICES, Plan, execute, plan_system, under
from emoedge.edge.deployment.firstboot_schema import FILE_NAME, MAX_FILE_BYTES, FirstBootFile, Problem, parse_data

# firstboot_units (profiles, the runtime configuration) is imported when a file is checked: an unchanged
# card's boot reads one file and hashes it

log = logging.getLogger(__name__)
REPORT_NAME = "emoedge-firstboot.txt"
STATE_SHA = "/var/lib/emoedge/firstboot.sha256"
PASSWORD = "/etc/emoedge/mqtt-password"
CA_FILE = "/etc/emoedge/mqtt-ca.pem"
__all__ = ["FirstBootResult", "run_firstboot", "check_file", "check_only", "gate_off", "REPORT_NAME", "STATE_SHA",
           "MARKER", "DEVICE_PROFILE"]


@dataclasses.dataclass(frozen=True)
class FirstBootResult:
    exit_code: int                     # 0 applied or unchanged, 2 refused (a bad or missing file)
    status: str                        # applied | unchanged | refused (| checked: --check)
    report: str                        # what the console and BOOT/emoedge-firstboot.txt say
    problems: tuple[Problem, ...] = ()
    unit: str | None = None            # the emoedge unit applied (emoedge-sensor.service, ...)


Systemctl = Callable[..., None]


def systemctl(*args: str) -> None:
    """``systemctl ARGS`` on the running box; a failure is logged, not raised (the files are in place,
    and the next boot reads them)."""
    try:
        r = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("systemctl %s: %s", " ".join(args), exc)
        return
    if r.returncode:
        log.warning("systemctl %s: exit %d: %s", " ".join(args), r.returncode, r.stderr.strip()[:300])


def _read(cfg: Path) -> tuple[bytes | None, list[Problem]]:
    from emoedge.core.fileio import read_small_file

    try:
        return read_small_file(cfg, "the first-boot file", MAX_FILE_BYTES, ValueError), []
    except (OSError, ValueError) as exc:
        return None, [Problem(FILE_NAME, str(exc), f"a YAML text file of at most {MAX_FILE_BYTES // 1024} KiB")]


def _load(raw: bytes, cfg: Path) -> tuple[object, list[Problem]]:
    from emoedge.core.safeyaml import load_yaml_text

    try:
        text = raw.decode("utf-8")
        return load_yaml_text(text, str(cfg), ValueError), _duplicates(text)
    except UnicodeDecodeError as exc:
        return None, [Problem(FILE_NAME, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                              "save it as UTF-8 (any plain-text editor)")]
    except ValueError as exc:
        return None, [Problem(FILE_NAME, str(exc), "fix the YAML syntax near the place named (indentation: spaces, "
                                                   "not tabs; a value with ': ' or '#' in quotes)")]


def _duplicates(text: str) -> list[Problem]:
    """Keys given twice in one mapping (YAML keeps the last silently: a second ``wifi:`` block pasted below
    the first would win unseen). Called on text :func:`load_yaml_text` accepted (bounded, no aliases)."""
    import yaml

    out: list[Problem] = []

    def walk(node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                name = f"{path}{k.value}" if isinstance(k, yaml.ScalarNode) else path + "?"
                if name in seen:
                    out.append(Problem(name, f"is given twice (lines {seen[name]} and {k.start_mark.line + 1}): "
                                             "only the last would count", "keep one of them"))
                seen[name] = k.start_mark.line + 1
                walk(v, name + ".")
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, f"{path.rstrip('.')}[{i}].")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return out


def check_file(boot: Path, root: Path, templates: Path | None = None) -> tuple[FirstBootFile | None, dict | None,
                                                                               list[Problem]]:
    """Everything a first-boot file is checked for, every problem found: (the file, the profile plan
    of :func:`plan_profile`'s input, problems)."""
    cfg = boot / FILE_NAME
    raw, problems = _read(cfg)
    if raw is None:
        return None, None, problems
    data, problems = _load(raw, cfg)
    if data is None and problems:
        return None, None, problems
    fb, more = parse_data(data, boot, under(root, "/usr/share/zoneinfo"), str(cfg))
    problems += more
    if fb is None:
        return None, None, problems
    from emoedge.edge.deployment.firstboot_units import profile_problems

    resolved, more = profile_problems(fb, boot, root, templates, PASSWORD, CA_FILE)
    return fb, resolved, problems + more


def check_only(boot_dir: str | Path, root: str | Path = "/", templates: str | Path | None = None) -> FirstBootResult:
    """``emoedge firstboot --check``: every problem of BOOT/emoedge.yaml, nothing written anywhere."""
    boot, cfg = Path(boot_dir), Path(boot_dir) / FILE_NAME
    if not cfg.is_file():
        problems = [Problem(FILE_NAME, f"no such file: {cfg}", "copy emoedge.yaml.example to emoedge.yaml")]
    else:
        _, _, problems = check_file(boot, Path(root), Path(templates) if templates else None)
    if problems:
        report = refused_report(cfg, problems, "checked only", on_card=False)
        return FirstBootResult(EXIT_BAD_INPUT, "refused", report, tuple(problems))
    return FirstBootResult(EXIT_OK, "checked", f"emoedge first boot: {cfg}: ok (checked only, nothing applied)\n")


def _now(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")


def refused_report(cfg: Path, problems: list[Problem], when: str, on_card: bool = True) -> str:
    """The report of a bad file: every problem, key by key, with its fix."""
    lines = [f"emoedge first boot: {cfg} was NOT applied ({when}): {len(problems)} problem(s).",
             "The emoedge service stays off until the file is fixed: correct the keys below, save the file "
             "on the boot partition, and boot again (nothing else was changed)." if on_card else
             "On a card, the emoedge service would stay off until the file is fixed: correct the keys below.", ""]
    lines += [f"{i}. {p.line()}" for i, p in enumerate(problems, 1)]
    lines += ["", "The example with every key explained: emoedge.yaml.example on the boot partition."]
    return "\n".join(lines) + "\n"


def gate_off(root: Path, live: bool, run: Systemctl) -> None:
    """The emoedge service off: its start condition and enablement removed (and stopped on the box)."""
    under(root, MARKER).unlink(missing_ok=True)
    under(root, STATE_SHA).unlink(missing_ok=True)
    for wants in under(root, "/etc/systemd/system").glob("*.wants"):
        for unit in SERVICES:
            (wants / unit).unlink(missing_ok=True)
    if live:
        run("--no-block", "stop", *SERVICES)


def _pending_password(boot: Path, data: object) -> bool:
    """Whether the file names a password file that is on the boot partition (a new one to move)."""
    mqtt = data.get("mqtt") if isinstance(data, dict) else None
    name = mqtt.get("password_file") if isinstance(mqtt, dict) else None
    return isinstance(name, str) and ".." not in name and (boot / name.lstrip("/")).is_file()


def _unchanged(boot: Path, root: Path, raw: bytes) -> bool:
    try:
        last = under(root, STATE_SHA).read_text().split()[0]
    except (OSError, IndexError):
        return False
    if last != hashlib.sha256(raw).hexdigest() or not under(root, MARKER).is_file():
        return False
    data, problems = _load(raw, boot / FILE_NAME)
    return not problems and not _pending_password(boot, data)


def run_firstboot(boot_dir: str | Path, root: str | Path = "/", now: dt.datetime | None = None,
                  templates: str | Path | None = None, prefix: str = "/opt/emoedge", live: bool | None = None,
                  run: Systemctl = systemctl) -> FirstBootResult:
    """Check and apply BOOT/emoedge.yaml into ROOT (see the module's doc). ``live`` (default: ROOT is /
    and systemd runs) also reloads systemd and starts/stops the units and the network; ``run`` is
    the systemctl to call."""
    boot, root = Path(boot_dir), Path(root)
    live = (root == Path("/") and Path("/run/systemd/system").is_dir()) if live is None else live
    cfg, when = boot / FILE_NAME, _now(now)
    if not cfg.exists() and under(root, MARKER).is_file():
        return FirstBootResult(EXIT_OK, "unchanged", f"emoedge first boot: no {cfg}; the configuration applied "
                                                     f"before stays ({DEVICE_PROFILE})\n")
    raw = None
    if cfg.exists():
        raw, _ = _read(cfg)
    if raw is not None and _unchanged(boot, root, raw):
        return FirstBootResult(EXIT_OK, "unchanged", f"emoedge first boot: {cfg} is unchanged since it was applied "
                                                     f"(sha256 {hashlib.sha256(raw).hexdigest()[:16]}...)\n")
    if not cfg.exists():
        problems = [Problem(FILE_NAME, f"no first-boot file on the boot partition ({cfg})",
                            "copy emoedge.yaml.example to emoedge.yaml on the boot partition, fill it in, boot")]
        fb = resolved = None
    else:
        fb, resolved, problems = check_file(boot, root, Path(templates) if templates else None)
    if problems:
        gate_off(root, live, run)
        report = refused_report(cfg, problems, when)
        _write_report(boot, report)
        return FirstBootResult(EXIT_BAD_INPUT, "refused", report, tuple(problems))
    from emoedge.edge.deployment.firstboot_units import plan_profile

    plan = Plan()
    unit, summary = plan_profile(plan, fb, resolved, root, prefix, PASSWORD, CA_FILE, boot)
    plan_system(plan, root, fb.device_id, fb.timezone, fb.wifi, fb.ssh_keys)
    plan.write(MARKER, f"{hashlib.sha256(raw).hexdigest()}  {when}\n")
    plan.write(STATE_SHA, f"{hashlib.sha256(raw).hexdigest()}  {cfg}\n")
    for other in SERVICES:
        if other != unit:
            plan.removes += [f"/etc/systemd/system/{w}.wants/{other}" for w in ("multi-user.target",
                                                                                "graphical.target")]
    try:
        execute(plan, root)
    except WriteError as exc:
        _write_report(boot, f"emoedge first boot: {cfg} is valid but was NOT applied ({when}): {exc}\n"
                            "The configuration applied before (if any) stays. Free space on the card, or replace it, "
                            "and boot again.\n")
        raise
    moved = _move_password(boot, fb)
    report = applied_report(cfg, fb, unit, summary, plan, when, moved)
    _write_report(boot, report)
    if live:
        _go_live(fb, unit, run)
    return FirstBootResult(EXIT_OK, "applied", report, (), unit)


def _move_password(boot: Path, fb: FirstBootFile) -> str | None:
    """Delete the password file from the boot partition once it is copied (the root holds it now)."""
    if fb.mqtt is None or not fb.mqtt.password_file:
        return None
    p = boot / fb.mqtt.password_file
    if p.is_file():
        try:
            p.unlink()
        except OSError as exc:
            return f"copied to {PASSWORD} (mode 0600), but NOT deleted from the boot partition ({exc}): delete it"
        return f"copied to {PASSWORD} (mode 0600) and deleted from the boot partition"
    return f"{fb.mqtt.password_file} is not on the boot partition: the one applied before ({PASSWORD}) stays"


def _go_live(fb: FirstBootFile, unit: str, run: Systemctl) -> None:
    """On the running box: the new files take effect now (the boot does not wait for a reboot)."""
    try:
        Path("/proc/sys/kernel/hostname").write_text(fb.device_id)
    except OSError as exc:
        log.warning("could not set the host name now (%s); it is set at the next boot", exc)
    run("daemon-reload")
    if fb.wifi is not None:
        run("--no-block", "restart", "systemd-networkd.service", "wpa_supplicant@wlan0.service")
    others = [s for s in SERVICES if s != unit]
    run("--no-block", "stop", *others)            # a kiosk that became a sensor (or back)
    run("--no-block", "restart", unit)


def applied_report(cfg: Path, fb: FirstBootFile, unit: str, summary: list[str], plan: Plan, when: str,
                   moved: str | None) -> str:
    lines = [f"emoedge first boot: {cfg} was applied ({when}).", ""]
    lines += summary
    lines.append(f"host name: {fb.device_id}")
    lines.append(f"time zone: {fb.timezone or 'unchanged (not in the file)'}")
    if fb.wifi is not None:
        lines.append(f"Wi-Fi: {fb.wifi.ssid!r} (country {fb.wifi.country}) by wpa_supplicant@wlan0 and "
                     "systemd-networkd (DHCP); the passphrase is stored on the root as its WPA key only")
    else:
        lines.append("Wi-Fi: none (wired network only)")
    lines.append(f"SSH: {len(fb.ssh_keys)} public key(s) for root" if fb.ssh_keys else "SSH: no keys in the file")
    if moved:
        lines.append(f"MQTT password file: {moved}")
    lines += ["", "Files written on the root file system:"]
    lines += [f"  {w.path}" for w in plan.writes] + [f"  {ln.path} -> {ln.target}" for ln in plan.links]
    lines += ["", f"Check it over SSH: emoedge doctor --profile {DEVICE_PROFILE}; journalctl -u {unit}",
              "Change a setting: edit emoedge.yaml on the boot partition and reboot (it is applied again)."]
    return "\n".join(lines) + "\n"


def _write_report(boot: Path, report: str) -> None:
    """BOOT/emoedge-firstboot.txt, replaced whole (written under a temporary name, then renamed: a cut power
    keeps the old or the new one). No chmod: FAT refuses it unless mounted with ``quiet``."""
    target, tmp = boot / REPORT_NAME, boot / f".{REPORT_NAME}.new"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\r\n") as fh:   # CRLF: readable in Windows' Notepad too
            fh.write(report)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        log.error("could not write %s: %s (the report is on the console and in the journal)", target, exc)
