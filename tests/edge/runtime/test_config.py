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
