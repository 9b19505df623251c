"""The runtime configuration (emoedge.edge.runtime.config): bad values on the command line name their key."""

import pytest

from emoedge.cli import main


@pytest.mark.parametrize("args,needle", [
    (["--threads", "0"], "key 'threads' must be >= 1"),
    (["--metrics-port", "99999"], "key 'metrics_port' must be >= 0 and <= 65535"),
    (["--interval-s", "-1"], "key 'interval_s' must be > 0"),
    (["--budget-ms", "0"], "key 'budget_ms' must be > 0"),
])
def test_bad_values_on_the_command_line_name_the_key(args, needle, capsys):
    code = main(["run", "--source", "demo", "--max-frames", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "--" + args[0].lstrip("-") in err and "model" not in err.split(":")[1]


# -- issue 30: Home Assistant discovery and client certificates (mqtt_ha_discovery, mqtt_cert_file, mqtt_key_file)
@pytest.mark.parametrize("args,needle", [
    (["--mqtt", "mqtt://h/p", "--ha-discovery", "ha/#"], "key 'mqtt_ha_discovery' (--ha-discovery): the Home "
                                                         "Assistant discovery prefix 'ha/#'"),
    (["--mqtt", "mqtt://h/p", "--ha-discovery", "ha//x"], "key 'mqtt_ha_discovery' (--ha-discovery)"),
    (["--mqtt-room", "r", "--ha-discovery"], "key 'mqtt_ha_discovery' (--ha-discovery): needs a broker"),
    (["--mqtt", "mqtts://h/p", "--mqtt-cert-file", "c.pem"], "key 'mqtt_cert_file': a client certificate needs both"),
    (["--mqtt", "mqtts://h/p", "--mqtt-key-file", "k.pem"], "key 'mqtt_key_file': a client certificate needs both"),
    (["--mqtt", "mqtt://h/p", "--mqtt-cert-file", "c.pem", "--mqtt-key-file", "k.pem"],
     "key 'mqtt_cert_file': a client certificate is presented over TLS only"),
    (["--mqtt", "mqtt://h/p", "--mqtt-room", "x" * 129], "key 'mqtt_room':"),
])
def test_bad_mqtt_keys_on_the_command_line_name_the_key_and_the_flag(args, needle, capsys):
    code = main(["run", "--source", "demo", "--max-frames", "1", *args])
    err = capsys.readouterr().err
    flag = next(a for a in reversed(args) if a.startswith("--"))
    assert code == 2 and needle in err and flag in err, err


def test_the_keys_come_from_a_profile_too():
    from emoedge.edge.runtime.config import RuntimeConfig

    c = RuntimeConfig.from_dict({"mqtt": "mqtts://broker/school", "mqtt_ha_discovery": "homeassistant",
                                 "mqtt_cert_file": "/etc/emoedge/box.pem", "mqtt_key_file": "/etc/emoedge/box.key"})
    assert (c.mqtt_ha_discovery, c.mqtt_cert_file, c.mqtt_key_file) == ("homeassistant", "/etc/emoedge/box.pem",
                                                                        "/etc/emoedge/box.key")
    with pytest.raises(ValueError, match="key 'mqtt_ha_discovery' must be str or null"):
        RuntimeConfig.from_dict({"mqtt": "mqtt://b", "mqtt_ha_discovery": True})


def test_default_prefix_and_a_missing_certificate_file_is_exit_2_naming_the_flag(tmp_path, capsys):
    pytest.importorskip("paho.mqtt", reason="paho-mqtt is not installed (pip install -e '.[fleet]')")
    from emoedge.cli import build_parser

    args = build_parser().parse_args(["run", "--mqtt", "mqtt://h", "--ha-discovery"])
    assert args.mqtt_ha_discovery == "homeassistant"
    key = tmp_path / "box.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    missing = tmp_path / "box.pem"
    code = main(["run", "--source", "demo", "--max-frames", "1", "--threads", "1", "--mqtt", "mqtts://127.0.0.1:1/x",
                 "--mqtt-outbox", str(tmp_path / "o.sqlite"), "--mqtt-cert-file", str(missing), "--mqtt-key-file",
                 str(key)])
    err = capsys.readouterr().err
    assert code == 2 and f"--mqtt-cert-file {missing}: not found" in err and "Traceback" not in err
    assert not (tmp_path / "o.sqlite").exists()                 # refused before any file is made


BOMB_SET = ("[&a [l,l,l,l,l,l,l,l,l], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], "
            "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
            "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f], &h [*g,*g,*g,*g,*g,*g,*g,*g,*g], &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]]")


def test_yaml_alias_bombs_are_refused_at_once_in_a_config_a_profile_and_a_set(tmp_path, capsys):
    """Issue 28: a 414-byte alias bomb ran 60 s and 5 GB before a MemoryError printing the whole value."""
    bomb = "".join(f"{c}: &{c} [{', '.join(['*' + chr(ord(c) - 1)] * 9)}]\n" for c in "bcdefghi")
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + bomb + "model: *i\n"
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(bomb)
    assert main(["run", "--config", str(cfg), "--source", "demo", "--max-frames", "1"]) == 2
    assert "bomb.yaml: not valid YAML here: YAML anchors (&name) are not accepted here" in capsys.readouterr().err
    prof = tmp_path / "p.yaml"
    prof.write_text("extends: x86-dev\n" + bomb.replace("model: *i\n", "runtime:\n  model: *i\n"))
    assert main(["profile", "check", str(prof)]) == 2
    assert "anchors" in capsys.readouterr().err
    assert main(["run", "--profile", "x86-dev", "--source", "demo", "--max-frames", "1",
                 "--set", f"runtime.model={BOMB_SET}"]) == 2
    err = capsys.readouterr().err
    assert "override 'runtime.model': its value: not valid YAML here: YAML anchors" in err and len(err) < 2000


def test_a_huge_value_is_refused_without_printing_it_whole(tmp_path, capsys):
    assert main(["profile", "check", "x86-dev", "--set", "runtime.detector=" + "m" * 1_000_000]) == 2
    err = capsys.readouterr().err
    assert "detector" in err and "1,000,002 characters" in err and len(err) < 2000


def test_a_configuration_file_that_is_a_fifo_or_a_device_is_refused(tmp_path, capsys):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    assert main(["run", "--config", str(tmp_path / "fifo.yaml"), "--source", "demo", "--max-frames", "1"]) == 2
    assert "configuration file not found" in capsys.readouterr().err   # not a regular file: never opened
