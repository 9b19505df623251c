"""The profile side of the first-boot file: its settings as ``--set`` overrides of the profile it names,
checked as ``emoedge profile check`` checks them (:func:`profiles.load_profile`), written as one
self-contained profile (/etc/emoedge/device.yaml) and rendered into the emoedge systemd unit from
deploy/systemd's template (:func:`profiles.render_unit`), gated on the first-boot unit."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import tempfile
from pathlib import Path

import yaml

from emoedge.edge.deployment.firstboot_apply import DEVICE_PROFILE, FIRSTBOOT_UNIT, MARKER, Link, Plan, under
from emoedge.edge.deployment.firstboot_schema import FirstBootFile, Problem
from emoedge.edge.deployment.profiles import list_profiles, load_profile, render_unit, resolved_settings
from emoedge.edge.runtime.config import ConfigError

DEFAULT_DATA_DIR = "/var/lib/emoedge"
# where an image keeps deploy/systemd's templates (the first found is used); the last: a source checkout
TEMPLATE_DIRS = ("/opt/emoedge/deploy/systemd", "/opt/emoedge/systemd", "/opt/src/emoedge/deploy/systemd")
# the file's own keys -> the profile keys they set (extra: may not set these: one place per setting)
OWN_KEYS = {"runtime.mqtt": "mqtt.url", "runtime.mqtt_username": "mqtt.username",
            "runtime.mqtt_password_file": "mqtt.password_file", "runtime.mqtt_ca_file": "mqtt.ca_file",
            "runtime.mqtt_device": "device_id", "runtime.mqtt_room": "room", "runtime.retention_days": "retention_days",
            "runtime.source": "source", "deployment.purpose": "purpose", "deployment.jurisdiction": "jurisdiction"}


def unit_name(mode: str) -> str:
    """The unit of a deployment mode: the kiosk's for kiosk, else the headless sensor's."""
    return "emoedge-kiosk.service" if mode == "kiosk" else "emoedge-sensor.service"


def find_template(root: Path, unit: str, templates: Path | None = None) -> Path | None:
    dirs = [templates] if templates else [under(root, d) for d in TEMPLATE_DIRS]
    if not templates:
        dirs.append(Path(__file__).resolve().parents[3] / "deploy" / "systemd")   # a source checkout
    return next((d / unit for d in dirs if (d / unit).is_file()), None)


def own_overrides(fb: FirstBootFile, boot: Path, password: str, ca_file: str) -> list[str]:
    """The file's settings as ``--set`` overrides (values JSON, which YAML reads back unchanged)."""
    sets = {"deployment.purpose": fb.purpose, "deployment.jurisdiction": fb.jurisdiction,
            "runtime.mqtt_room": fb.room, "runtime.retention_days": fb.retention_days,
            "runtime.source": str(boot / fb.source) if fb.source else None}
    if fb.mqtt is not None:
        sets.update({"runtime.mqtt": fb.mqtt.url, "runtime.mqtt_device": fb.device_id,
                     "runtime.mqtt_username": fb.mqtt.username,
                     "runtime.mqtt_password_file": password if fb.mqtt.password_file else None,
                     "runtime.mqtt_ca_file": ca_file if fb.mqtt.ca_file else None})
    return [f"{k}={json.dumps(v)}" for k, v in sets.items() if v is not None]


def _load(name: str, overrides: list[str], problems: list[Problem], extra: bool):
    try:
        return load_profile(name, overrides=overrides)
    except ConfigError as exc:
        problems.append(Problem("extra" if extra else "profile",
                                f"the profile {name!r} with this file's settings fails emoedge profile check: {exc}",
                                "change the key the message names (one of this file's keys, or extra:); "
                                f"'emoedge profile check {name} --set KEY=VALUE ...' repeats the check"))
        return None


def _purpose(prof, problems: list[Problem]) -> None:
    if not prof.runtime.require_purpose:
        return
    for key, what in (("purpose", "why emotion recognition runs here (e.g. 'engagement study, ethics approval "
                                  "REC-2026-14')"), ("jurisdiction", "where it runs (e.g. UK, US-CA, EU/DE)")):
        if not getattr(prof.runtime, key):
            problems.append(Problem(key, f"is required by the profile {prof.name!r} (a classroom sensor does not start "
                                         f"without a purpose and a jurisdiction: README, Lawful use)", what))


def _broker_address(prof, template: str, problems: list[Problem]) -> None:
    """A unit that allows only listed addresses (the sensor's IPAddressAllow) needs the broker's IP: a
    name cannot be resolved at first boot, before the network is up."""
    if not prof.runtime.mqtt or "IPAddressAllow" not in template:
        return
    from emoedge.edge.outputs.mqtt_broker import MqttTarget

    host = MqttTarget.parse(prof.runtime.mqtt).host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        problems.append(Problem("mqtt.url", f"the broker is named by host name ({host!r}): the sensor's unit lets "
                                            "the service reach listed IP addresses only (IPAddressAllow), and the "
                                            "name cannot be resolved at first boot, before the network is up",
                                "give the broker's IP address: mqtt://192.0.2.10:1883/emoedge (mqtts:// with "
                                "mqtt.ca_file verifies the certificate by its IP address then)"))


def profile_problems(fb: FirstBootFile, boot: Path, root: Path, templates: Path | None, password: str,
                     ca_file: str) -> tuple[dict | None, list[Problem]]:
    """The checks of ``emoedge profile check`` on the profile with the file's settings, the purpose a
    classroom sensor needs, the unit's; returns what :func:`plan_profile` needs (None with problems)."""
    problems: list[Problem] = []
    if fb.profile is None:
        return None, problems
    if fb.profile not in list_profiles():
        problems.append(Problem("profile", f"{fb.profile!r} is not a profile of this image",
                                f"one of: {', '.join(list_profiles())}"))
        return None, problems
    overrides = own_overrides(fb, boot, password, ca_file)
    for ov in fb.extra:
        key = ov.partition("=")[0].strip()
        if key in OWN_KEYS:
            problems.append(Problem(f"extra.{key}", f"is set by the file's key '{OWN_KEYS[key]}'",
                                    "set it there and remove it from extra:"))
    if fb.mqtt is not None and fb.mqtt.password_file and not (boot / fb.mqtt.password_file).is_file() \
            and not under(root, password).is_file():
        problems.append(Problem("mqtt.password_file", f"{fb.mqtt.password_file!r}: no such file on the boot "
                                                      f"partition, and none was applied before ({password})",
                                "copy the file holding the broker password onto the boot partition"))
    prof = _load(fb.profile, overrides + list(fb.extra), problems, bool(fb.extra))
    if prof is None:
        return None, problems
    if not Path(prof.deployment.data_dir).is_absolute():   # a dev profile's ./emoedge-data: no place for a unit
        overrides.append(f"deployment.data_dir={json.dumps(DEFAULT_DATA_DIR)}")
        prof = _load(fb.profile, overrides + list(fb.extra), problems, bool(fb.extra))
        if prof is None:
            return None, problems
    _purpose(prof, problems)
    unit = unit_name(prof.deployment.mode)
    tpath = find_template(root, unit, templates)
    if tpath is None:
        problems.append(Problem("profile", f"the image has no unit template {unit} (looked in "
                                           f"{', '.join(TEMPLATE_DIRS)}): the image is incomplete",
                                "build the image with deploy/image/build.sh, which installs deploy/systemd/*.service "
                                f"into {TEMPLATE_DIRS[0]}"))
        return None, problems
    template = tpath.read_text()
    _broker_address(prof, template, problems)
    if problems:
        return None, problems
    settings = resolved_settings(fb.profile, overrides + list(fb.extra))
    settings["description"] = f"{fb.profile} for {fb.device_id}, from emoedge.yaml on the boot partition"
    text = device_profile_text(fb, settings)
    with tempfile.TemporaryDirectory() as tmp:   # the file to be installed is the file checked
        (Path(tmp) / "device.yaml").write_text(text)
        installed = _load(str(Path(tmp) / "device.yaml"), [], problems, bool(fb.extra))
    if installed is None:
        return None, problems
    try:
        rendered = render_unit(dataclasses.replace(installed, path=DEVICE_PROFILE, name="device"), template)
    except ConfigError as exc:
        return None, [Problem("mqtt.url", str(exc))]
    return {"profile": installed, "text": text, "unit": unit, "rendered": rendered}, []


def device_profile_text(fb: FirstBootFile, settings: dict) -> str:
    head = (f"# /etc/emoedge/device.yaml: written by 'emoedge firstboot' from emoedge.yaml on the boot partition:\n"
            f"# the profile {fb.profile} with that file's settings, as one profile. Edit emoedge.yaml and reboot\n"
            "# (this file is rewritten then). Check it: emoedge doctor --profile /etc/emoedge/device.yaml\n")
    return head + yaml.safe_dump(settings, sort_keys=False, allow_unicode=True)


def gate_unit(text: str, boot_mount: str | None = None) -> str:
    """The rendered unit, started only after the first-boot unit has applied a good file: ordered after
    it, and conditional on its marker (a bad file removes it, so a queued start is skipped)."""
    lines = ["# first boot: starts only after emoedge-firstboot.service applied a good emoedge.yaml",
             f"Wants={FIRSTBOOT_UNIT}", f"After={FIRSTBOOT_UNIT}", f"ConditionPathExists={MARKER}"]
    if boot_mount:
        lines.append(f"RequiresMountsFor={boot_mount}")
    out = []
    for line in text.splitlines():
        out.append(line)
        if line.strip() == "[Unit]":
            out += lines
    return "\n".join(out) + "\n"


def wanted_by(unit_text: str) -> list[str]:
    """The targets of a unit's [Install] WantedBy= (what ``systemctl enable`` links it into)."""
    targets, section = [], ""
    for line in unit_text.splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s
        elif section == "[Install]" and s.startswith("WantedBy="):
            targets += s.split("=", 1)[1].split()
    return targets


def plan_profile(plan: Plan, fb: FirstBootFile, resolved: dict, root: Path, prefix: str, password: str,
                 ca_file: str, boot: Path | None = None) -> tuple[str, list[str]]:
    """device.yaml, the unit (enabled), the data folder, the broker's files into ``plan``; returns the
    unit's name and the report's lines about them."""
    prof, unit = resolved["profile"], resolved["unit"]
    boot_mount = str(Path(prof.runtime.source).parent) if fb.source else None
    plan.write(DEVICE_PROFILE, resolved["text"])
    rendered = gate_unit(resolved["rendered"].replace("/opt/emoedge/venv/", f"{prefix}/venv/"), boot_mount)
    plan.write(f"/etc/systemd/system/{unit}", rendered)
    targets = wanted_by(rendered) or ["multi-user.target"]
    plan.links += [Link(f"/etc/systemd/system/{t}.wants/{unit}", f"/etc/systemd/system/{unit}") for t in targets]
    d = prof.deployment
    plan.dirs.append((d.data_dir, d.user, 0o755))
    if fb.mqtt is not None and fb.mqtt.password_file and boot is not None:
        src = boot / fb.mqtt.password_file
        if src.is_file():
            plan.write(password, src.read_bytes(), 0o600, d.user)
    if fb.mqtt is not None and fb.mqtt.ca_file and boot is not None:
        plan.write(ca_file, (boot / fb.mqtt.ca_file).read_bytes(), 0o644)
    r = prof.runtime
    lines = [f"profile: {fb.profile} ({d.mode} mode, {prof.board.name}) -> {DEVICE_PROFILE}",
             f"service: {unit}, enabled ({', '.join(targets)}); runs as {d.user} in {d.data_dir}"]
    if r.purpose or r.jurisdiction:
        lines.append(f"purpose: {r.purpose or '-'}; jurisdiction: {r.jurisdiction or '-'}")
    if r.mqtt:
        lines.append(f"MQTT: {r.mqtt} as device {r.mqtt_device or fb.device_id}"
                     + (f", room {r.mqtt_room!r}" if r.mqtt_room else ""))
    if r.retention_days:
        lines.append(f"retention: {r.retention_days:g} days")
    if fb.source:
        lines.append(f"source: {r.source} (a file on the boot partition, in place of a camera)")
    return unit, lines
