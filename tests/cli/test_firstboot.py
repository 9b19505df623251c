"""`emoedge firstboot --boot-dir BOOT --root ROOT` (emoedge.cli.firstboot), the command the image's
emoedge-firstboot.service runs: exit 0 and the report on stdout when applied or unchanged, exit 2 and the
report on stderr (and in BOOT/emoedge-firstboot.txt) for a bad file."""

import subprocess
import sys

from firstboot_cards import GOOD, make_card

from emoedge.cli import main


def test_apply_then_unchanged_then_refused(tmp_path, capsys):
    card = make_card(tmp_path, GOOD)
    args = ["firstboot", "--boot-dir", str(card.boot), "--root", str(card.root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "was applied" in out and "emoedge-sensor.service, enabled" in out
    assert main(args) == 0 and "unchanged" in capsys.readouterr().out
    card.write({**GOOD, "profile": "classroom-sensor-rpi4", "purpose": None, "wifi": {"ssid": "x"}})
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "NOT applied" in err and "key 'wifi.country'" in err and "key 'purpose'" in err
    assert card.report() == err


def test_help_names_the_flags():
    out = subprocess.run([sys.executable, "-m", "emoedge", "firstboot", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--boot-dir", "--root", "--templates", "--prefix", "(default: /boot/firmware)"):
        assert flag in out.stdout


def test_check_only_writes_nothing(tmp_path, capsys):
    card = make_card(tmp_path, GOOD)
    before = sorted(p for p in tmp_path.rglob("*"))
    args = ["firstboot", "--check", "--boot-dir", str(card.boot), "--root", str(card.root)]
    assert main(args) == 0 and "ok (checked only" in capsys.readouterr().out
    card.write({**GOOD, "device_id": "Room 12"})
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "key 'device_id'" in err and "would stay off" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before          # the password file is still on "the card"
    (card.boot / "emoedge.yaml").unlink()
    assert main(args) == 2 and "no such file" in capsys.readouterr().err
