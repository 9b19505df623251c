"""emoedge firstboot (emoedge.edge.deployment.firstboot.run_firstboot) applied into a card's root in tmp_path:
a good file becomes the device profile, the enabled unit and the system files; an unchanged file is left
alone; a changed one is applied again; a bad one is reported key by key (console and boot partition),
changes nothing, and leaves the service off; a write that fails half-way changes nothing."""

import copy
import os
from pathlib import Path

import pytest
import yaml
from firstboot_cards import EMOEDGE_UID, GOOD, make_card

from emoedge.edge.deployment import firstboot_apply
from emoedge.edge.deployment.firstboot import MARKER, STATE_SHA, run_firstboot
from emoedge.edge.deployment.profiles import load_profile

WANTS = "etc/systemd/system/multi-user.target.wants"


def apply(card, **kw):
    return run_firstboot(card.boot, card.root, live=False, **kw)


def snapshot(root):
    """Every file and link under ``root`` with its content (or target) and mode."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = os.readlink(p) if os.path.islink(p) else Path(p).read_bytes()
            out[os.path.relpath(p, root)] = (data, st.st_mode, st.st_uid)
    return out


def test_a_good_file_is_applied(tmp_path):
    card = make_card(tmp_path, GOOD)
    r = apply(card)
    assert (r.exit_code, r.status, r.unit) == (0, "applied", "emoedge-sensor.service")
    prof = load_profile(card.path("/etc/emoedge/device.yaml"))          # a self-contained profile
    assert prof.deployment.mode == "sensor" and prof.runtime.require_purpose
    assert prof.runtime.purpose == GOOD["purpose"] and prof.runtime.jurisdiction == "UK"
    assert prof.runtime.mqtt == GOOD["mqtt"]["url"] and prof.runtime.mqtt_device == "room12-sensor"
    assert prof.runtime.mqtt_room == "Room 12" and prof.runtime.retention_days == 90
    assert prof.runtime.interval_s == 60 and prof.runtime.mqtt_password_file == "/etc/emoedge/mqtt-password"
    unit = card.path("/etc/systemd/system/emoedge-sensor.service").read_text()
    assert "ExecStart=/opt/emoedge/venv/bin/emoedge run --profile /etc/emoedge/device.yaml\n" in unit
    assert "ConditionPathExists=/etc/emoedge/firstboot.ok" in unit and "IPAddressAllow=localhost 192.0.2.10" in unit
    link = card.path(f"/{WANTS}/emoedge-sensor.service")
    assert os.readlink(link) == "/etc/systemd/system/emoedge-sensor.service"
    assert card.path("/etc/hostname").read_text() == "room12-sensor\n"
    assert "127.0.1.1\troom12-sensor" in card.path("/etc/hosts").read_text()
    assert "debian" not in card.path("/etc/hosts").read_text()
    assert os.readlink(card.path("/etc/localtime")) == "/usr/share/zoneinfo/Europe/London"
    assert card.path("/etc/timezone").read_text() == "Europe/London\n"
    assert card.path(MARKER).is_file() and card.path(STATE_SHA).is_file()
    assert "was applied" in card.report() and "room12-sensor" in card.report()
    raw = (card.boot / "emoedge-firstboot.txt").read_bytes()          # CRLF: Windows' Notepad reads it too
    assert raw.count(b"\r\n") == raw.count(b"\n") > 10


def test_the_password_file_moves_off_the_boot_partition(tmp_path):
    card = make_card(tmp_path, GOOD)
    apply(card)
    pw = card.path("/etc/emoedge/mqtt-password")
    assert pw.read_text() == "s3cret\n" and (pw.stat().st_mode & 0o777) == 0o600
    if os.geteuid() == 0:
        assert pw.stat().st_uid == EMOEDGE_UID and card.path("/data/emoedge").stat().st_uid == EMOEDGE_UID
    assert not (card.boot / "mqtt-password.txt").exists()
    assert "deleted from the boot partition" in card.report()
    # the same file again: unchanged; a new password file beside it: applied again
    assert apply(card).status == "unchanged"
    (card.boot / "mqtt-password.txt").write_text("n3w\n")
    assert apply(card).status == "applied" and pw.read_text() == "n3w\n"


def test_an_unchanged_file_is_left_alone_and_a_changed_one_applied_again(tmp_path):
    card = make_card(tmp_path, GOOD)
    apply(card)
    before = snapshot(card.root)
    r = apply(card)
    assert (r.exit_code, r.status) == (0, "unchanged") and snapshot(card.root) == before
    card.write({**GOOD, "device_id": "room14-sensor", "timezone": "UTC"})
    r = apply(card)
    assert r.status == "applied" and card.path("/etc/hostname").read_text() == "room14-sensor\n"
    assert os.readlink(card.path("/etc/localtime")) == "/usr/share/zoneinfo/UTC"
    assert load_profile(card.path("/etc/emoedge/device.yaml")).runtime.mqtt_device == "room14-sensor"


def test_a_bad_file_changes_nothing_and_leaves_the_service_off(tmp_path, capsys):
    card = make_card(tmp_path, GOOD)
    apply(card)
    keep = {p: v for p, v in snapshot(card.root).items() if not p.startswith(("etc/emoedge/firstboot.ok",
                                                                                "var/lib", WANTS))}
    bad = copy.deepcopy(GOOD)
    bad.pop("purpose")
    bad["colour"] = "blue"
    bad["mqtt"]["url"] = "http://192.0.2.10"
    card.write(bad)
    r = apply(card)
    assert (r.exit_code, r.status) == (2, "refused")
    assert [p.key for p in r.problems] == ["colour", "mqtt.url", "purpose"]
    report = card.report()
    assert "NOT applied" in report and "key 'colour'" in report and "key 'mqtt.url'" in report
    assert "key 'purpose'" in report and "stays off" in report and "fix:" in report
    after = snapshot(card.root)
    assert {p: after.get(p) for p in keep} == keep                       # nothing half-applied
    assert not card.path(MARKER).exists() and not card.path(STATE_SHA).exists()
    assert not card.path(f"/{WANTS}/emoedge-sensor.service").exists()    # not enabled
    # every boot re-checks a refused file; fixed, it is applied and the service enabled again
    assert apply(card).exit_code == 2
    card.write(GOOD)
    (card.boot / "mqtt-password.txt").unlink(missing_ok=True)             # moved at the first apply
    assert apply(card).status == "applied" and card.path(f"/{WANTS}/emoedge-sensor.service").is_symlink()


def test_a_missing_file(tmp_path):
    card = make_card(tmp_path)
    r = apply(card)
    assert r.exit_code == 2 and "no first-boot file" in card.report()
    card.write(GOOD)
    apply(card)
    (card.boot / "emoedge.yaml").unlink()
    r = apply(card)
    assert (r.exit_code, r.status) == (0, "unchanged") and "stays" in r.report


@pytest.mark.parametrize("text, key", [("profile: [", "emoedge.yaml"), ("a: &x 1\nb: *x\n", "emoedge.yaml"),
                                       (b"\xff\xfe", "emoedge.yaml"), ("x" * 70_000, "emoedge.yaml")])
def test_a_file_that_is_not_yaml_text(tmp_path, text, key):
    card = make_card(tmp_path)
    p = card.boot / "emoedge.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    r = apply(card)
    assert r.exit_code == 2 and [pr.key for pr in r.problems] == [key]


def test_switching_to_the_kiosk_profile_disables_the_sensor(tmp_path):
    card = make_card(tmp_path, GOOD)
    apply(card)
    kiosk = {k: v for k, v in GOOD.items() if k not in ("purpose", "jurisdiction")}
    card.write({**kiosk, "profile": "kiosk-rpi4", "mqtt": {"url": "mqtt://broker.example:1883"}})
    r = apply(card)
    assert r.unit == "emoedge-kiosk.service", r.report
    assert card.path("/etc/systemd/system/graphical.target.wants/emoedge-kiosk.service").is_symlink()
    if os.geteuid() == 0:   # the kiosk's data folder holds the first boot's state too: still the service's
        assert card.path("/var/lib/emoedge").stat().st_uid == EMOEDGE_UID
    assert not card.path(f"/{WANTS}/emoedge-sensor.service").exists()


def test_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    card = make_card(tmp_path, GOOD)
    apply(card)
    card.write({**GOOD, "device_id": "room14-sensor"})
    (card.boot / "mqtt-password.txt").write_text("n3w\n")
    before = snapshot(card.root)
    calls = []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(firstboot_apply.os, "fsync", full_disk)
    from emoedge.core.errors import WriteError

    with pytest.raises(WriteError, match="nothing was changed"):
        apply(card)
    assert snapshot(card.root) == before                                  # no staged file left either
    assert (card.boot / "mqtt-password.txt").exists()
    assert "valid but was NOT applied" in card.report() and "No space left" in card.report()


def test_on_the_running_box_systemd_is_told(tmp_path):
    card = make_card(tmp_path, GOOD)
    calls = []
    run_firstboot(card.boot, card.root, live=True, run=lambda *a: calls.append(a))
    assert calls[0] == ("daemon-reload",)
    assert calls[-2:] == [("--no-block", "stop", "emoedge-kiosk.service"),
                          ("--no-block", "restart", "emoedge-sensor.service")]
    assert ("--no-block", "restart", "systemd-networkd.service", "wpa_supplicant@wlan0.service") in calls
    calls.clear()
    card.write({**GOOD, "device_id": "BAD"})
    run_firstboot(card.boot, card.root, live=True, run=lambda *a: calls.append(a))
    assert calls == [("--no-block", "stop", "emoedge-sensor.service", "emoedge-kiosk.service")]


def test_a_dev_profile_gets_a_data_folder_for_its_unit(tmp_path):
    card = make_card(tmp_path, {"profile": "rpi4", "device_id": "lab-pi", "source": "clip.mp4"})
    (card.boot / "clip.mp4").write_bytes(b"\0")
    r = apply(card)
    assert r.unit == "emoedge-sensor.service", r.report
    prof = load_profile(card.path("/etc/emoedge/device.yaml"))
    assert prof.deployment.data_dir == "/var/lib/emoedge" and prof.runtime.source == str(card.boot / "clip.mp4")
    unit = card.path("/etc/systemd/system/emoedge-sensor.service").read_text()
    assert f"RequiresMountsFor={card.boot}" in unit and "WorkingDirectory=/var/lib/emoedge" in unit
    assert yaml.safe_load(card.path("/etc/emoedge/device.yaml").read_text())["deployment"]["mode"] == "dev"


def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path):
    card = make_card(tmp_path)
    text = yaml.safe_dump(GOOD, sort_keys=False)
    text += "wifi:\n  country: GB\n  ssid: Other\n  psk: password2\n"
    text = text.replace("  username: room12\n", "  username: room12\n  username: room13\n")
    card.write(text)
    r = apply(card)
    assert r.exit_code == 2 and [p.key for p in r.problems] == ["mqtt.username", "wifi"]
    assert "given twice (lines" in card.report()
