"""The profile side of the first boot (emoedge.edge.deployment.firstboot_units): the file's settings checked as
`emoedge profile check` checks them, and the units' gating, checked with systemd's own tools: a rendered unit
verifies (systemd-analyze verify), and enabling the first-boot unit the way the image build does
(systemctl --root enable) makes both emoedge services require it, so a failed first boot keeps them off."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from firstboot_cards import GOOD, make_card

from emoedge.edge.deployment.firstboot import PASSWORD, check_file, run_firstboot
from emoedge.edge.deployment.firstboot_schema import parse_data
from emoedge.edge.deployment.firstboot_units import gate_unit, own_overrides, wanted_by

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "image" / "emoedge-firstboot.service"


def problems(card, settings):
    card.write(settings)
    return check_file(card.boot, card.root)[2]


def test_the_profile_checks_of_emoedge_profile_check_apply(tmp_path):
    card = make_card(tmp_path)
    got = problems(card, {**GOOD, "extra": ["runtime.threads=64"]})          # a Pi 4 has 4 cores
    assert [p.key for p in got] == ["extra"] and "runtime.threads" in got[0].message
    got = problems(card, {**GOOD, "extra": {"runtime.video_out": "/data/x.mp4"}})   # the privacy floor
    assert [p.key for p in got] == ["extra"] and "video_out" in got[0].message
    got = problems(card, {**GOOD, "profile": "no-such-board"})
    assert [p.key for p in got] == ["profile"] and "classroom-sensor-rpi4" in got[0].fix


def test_the_classroom_sensor_needs_a_purpose_and_a_jurisdiction(tmp_path):
    card = make_card(tmp_path)
    settings = {k: v for k, v in GOOD.items() if k not in ("purpose", "jurisdiction")}
    assert [p.key for p in problems(card, settings)] == ["purpose", "jurisdiction"]
    assert [p.key for p in problems(card, {**settings, "purpose": "safety study"})] == ["jurisdiction"]
    # through extra: refused, pointing at the file's own key (one place per setting)
    got = problems(card, {**settings, "extra": {"deployment.purpose": "safety study"}})
    assert [p.key for p in got] == ["extra.deployment.purpose", "jurisdiction"] and "'purpose'" in got[0].message
    # a kiosk does not need them
    assert problems(card, {**settings, "profile": "kiosk-rpi4"}) == []


def test_extra_may_not_set_what_the_files_own_keys_set(tmp_path):
    got = problems(make_card(tmp_path), {**GOOD, "extra": {"runtime.mqtt": "mqtt://192.0.2.9"}})
    assert [p.key for p in got] == ["extra.runtime.mqtt"] and "mqtt.url" in got[0].message


def test_the_sensor_needs_its_brokers_ip_address(tmp_path):
    card = make_card(tmp_path)
    got = problems(card, {**GOOD, "mqtt": {**GOOD["mqtt"], "url": "mqtts://broker.school.example/emoedge"}})
    assert [p.key for p in got] == ["mqtt.url"] and "IPAddressAllow" in got[0].message


def test_a_password_file_named_but_never_given(tmp_path):
    card = make_card(tmp_path, password=None)
    assert [p.key for p in problems(card, GOOD)] == ["mqtt.password_file"]
    card.path(PASSWORD).parent.mkdir(parents=True)
    card.path(PASSWORD).write_text("applied before\n")
    assert problems(card, GOOD) == []


def test_own_overrides_survive_any_text(tmp_path):
    card = make_card(tmp_path)
    odd = {**GOOD, "purpose": "50% of 'lessons' = \"engagement\" $HOME #1", "room": "Raum 1.04 (Süd)"}
    fb, _ = parse_data(odd, card.boot, card.root / "usr/share/zoneinfo")
    from emoedge.edge.deployment.profiles import load_profile

    prof = load_profile("classroom-sensor-rpi4", own_overrides(fb, card.boot, PASSWORD, "/ca"))
    assert prof.runtime.purpose == odd["purpose"] and prof.runtime.mqtt_room == odd["room"]


def test_gate_unit_and_wanted_by():
    text = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=graphical.target\n"
    gated = gate_unit(text, "/boot/firmware")
    head = gated.split("[Service]")[0]
    assert "After=emoedge-firstboot.service" in head and "ConditionPathExists=/etc/emoedge/firstboot.ok" in head
    assert "RequiresMountsFor=/boot/firmware" in head
    assert wanted_by(gated) == ["graphical.target"]


def test_the_first_boot_unit():
    text = UNIT.read_text()
    for line in ("Type=oneshot", "RemainAfterExit=yes", "StandardOutput=journal+console",
                 "ExecStart=/opt/emoedge/venv/bin/emoedge firstboot --boot-dir /boot/firmware",
                 "Before=network-pre.target emoedge-sensor.service emoedge-kiosk.service",
                 "RequiredBy=emoedge-sensor.service emoedge-kiosk.service", "WantedBy=multi-user.target"):
        assert line in text.splitlines(), line


def _stub_prefix(tmp_path) -> Path:
    prefix = tmp_path / "opt"
    (prefix / "venv/bin").mkdir(parents=True)
    (prefix / "venv/bin/emoedge").write_text("#!/bin/sh\n")
    (prefix / "venv/bin/emoedge").chmod(0o755)
    return prefix


@pytest.mark.parametrize("profile", ["classroom-sensor-rpi4", "kiosk-rpi4"])
def test_rendered_units_verify_with_systemd(tmp_path, profile):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze (systemd) is not installed")
    card = make_card(tmp_path, {**GOOD, "profile": profile})
    r = run_firstboot(card.boot, card.root, live=False, prefix=str(_stub_prefix(tmp_path)))
    unit = card.path(f"/etc/systemd/system/{r.unit}")
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert out.returncode == 0, out.stderr


def test_enabling_the_first_boot_unit_makes_the_services_require_it(tmp_path):
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl (systemd) is not installed")
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True)
    shutil.copy(UNIT, system / UNIT.name)
    out = subprocess.run(["systemctl", f"--root={tmp_path}", "enable", UNIT.name], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for service in ("emoedge-sensor.service", "emoedge-kiosk.service"):
        link = system / f"{service}.requires" / UNIT.name
        assert os.readlink(link) == f"/etc/systemd/system/{UNIT.name}"
    assert (system / "multi-user.target.wants" / UNIT.name).is_symlink()
