"""emoedge.edge.outputs.mqtt_broker: the broker URL, credentials and the device id, read as hostile input."""

import os

import pytest

from emoedge.core.errors import BadInputError
from emoedge.edge.outputs.mqtt_broker import MAX_DEVICE_CHARS, MqttTarget, device_name, with_credentials

TARGET = MqttTarget.parse("mqtt://127.0.0.1:1883/x")


def test_a_password_file_is_read_and_stripped(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert with_credentials(TARGET, "u", str(pw)).password == "s3cret"


def test_a_fifo_or_a_device_as_password_file_is_refused_at_once(tmp_path):
    """Issue 28: a FIFO hung the start for ever, /dev/zero ate memory until the kernel killed the run."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="fifo: cannot use as the MQTT password file: it is a FIFO"):
        with_credentials(TARGET, "u", str(fifo))
    with pytest.raises(BadInputError, match="/dev/zero: cannot use as the MQTT password file: it is a device"):
        with_credentials(TARGET, "u", "/dev/zero")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(BadInputError, match="longer than 4096 bytes"):
        with_credentials(TARGET, "u", str(big))


def test_a_device_id_is_one_bounded_printable_topic_level():
    """Issue 28: a device id over 65,535 bytes killed the publisher thread (exit 0, intervals unsent)."""
    assert device_name("room-12_pi") == "room-12_pi"
    with pytest.raises(BadInputError, match=f"longer than {MAX_DEVICE_CHARS} characters") as err:
        device_name("d" * 70_000)
    assert len(str(err.value)) < 300                   # the message does not carry the whole id
    for bad in ("a/b", "a+b", "a#b", "a\0b", "a\nb", "  "):
        with pytest.raises(BadInputError, match="one topic level"):
            device_name(bad)


def test_a_70000_byte_device_id_on_the_command_line_is_exit_2(tmp_path, capsys):
    from emoedge.cli import main

    code = main(["run", "--source", "demo", "--max-frames", "1", "--mqtt", "mqtt://127.0.0.1:1/x",
                 "--mqtt-outbox", str(tmp_path / "o.sqlite"), "--mqtt-device", "d" * 70_000])
    err = capsys.readouterr().err
    assert code == 2 and "MQTT device id" in err and "longer than 128 characters" in err and len(err) < 2000
    assert not (tmp_path / "o.sqlite").exists()
