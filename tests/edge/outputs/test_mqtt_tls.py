"""Client certificates for MQTT (emoedge.edge.outputs.mqtt_tls): both files or neither, each one
there, readable and PEM, no passphrase (OpenSSL would prompt a service's terminal), a key others can
read warned about, a certificate that does not match its key refused by name, before any
connection. (Mutual TLS against a real Mosquitto: tests/edge/outputs/test_mqtt.py.)"""

from __future__ import annotations

import logging
import os

import pytest
from mqtt_pki import ThrowawayCA

from emoedge.core.errors import BadInputError
from emoedge.edge.outputs.mqtt_tls import check_client_cert, configure_tls

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def pem(tmp_path, name: str, text: str, mode: int = 0o600):
    p = tmp_path / name
    p.write_text(text)
    p.chmod(mode)
    return str(p)


def test_both_or_neither_and_each_file_named(tmp_path):
    cert, key = pem(tmp_path, "c.pem", CERT), pem(tmp_path, "k.pem", KEY)
    assert check_client_cert(None, None) is None and check_client_cert(cert, key) == (cert, key)
    with pytest.raises(BadInputError, match="--mqtt-cert-file needs --mqtt-key-file"):
        check_client_cert(cert, None)
    with pytest.raises(BadInputError, match="--mqtt-key-file needs --mqtt-cert-file"):
        check_client_cert(None, key)
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(BadInputError, match=f"--mqtt-cert-file {missing}: not found"):
        check_client_cert(missing, key)
    with pytest.raises(BadInputError, match=f"--mqtt-key-file {tmp_path}: not found"):
        check_client_cert(cert, str(tmp_path))                             # a folder is not a key
    with pytest.raises(BadInputError, match="not a PEM certificate"):
        check_client_cert(pem(tmp_path, "x.der", "\x30\x82binary"), key)
    with pytest.raises(BadInputError, match="not a PEM private key"):
        check_client_cert(cert, pem(tmp_path, "x.key", CERT))
    with pytest.raises(BadInputError, match="encrypted"):
        check_client_cert(cert, pem(tmp_path, "e.key", KEY.replace("PRIVATE", "ENCRYPTED PRIVATE")))
    with pytest.raises(BadInputError, match="not a PEM"):
        check_client_cert(pem(tmp_path, "big.pem", "x" * ((1 << 20) + 1)), key)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file (mode 000 too)")
def test_an_unreadable_key_is_named(tmp_path):
    key = pem(tmp_path, "k.pem", KEY, 0o000)
    with pytest.raises(BadInputError, match=f"--mqtt-key-file {key}: cannot be read"):
        check_client_cert(pem(tmp_path, "c.pem", CERT), key)


def test_a_key_others_can_read_is_warned_about(tmp_path, caplog):
    cert = pem(tmp_path, "c.pem", CERT)
    with caplog.at_level(logging.WARNING, logger="emoedge.edge.outputs.mqtt_tls"):
        check_client_cert(cert, pem(tmp_path, "private.key", KEY, 0o600))
        assert not caplog.records
        check_client_cert(cert, pem(tmp_path, "shared.key", KEY, 0o644))
    assert "shared.key" in caplog.text and "readable by others" in caplog.text and "chmod 600" in caplog.text


def test_paho_gets_the_pair_and_a_mismatch_is_refused_by_name(tmp_path):
    mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install -e '.[fleet]')")
    ca = ThrowawayCA(tmp_path / "pki")
    (c1, k1), (_c2, k2) = ca.client_cert("box1"), ca.client_cert("box2")
    for k in (k1, k2):
        k.chmod(0o600)
    new = lambda: mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)     # noqa: E731
    assert configure_tls(new(), False) is False                       # plain mqtt://, no files: no TLS
    assert configure_tls(new(), True) is True                         # mqtts://: the system's CAs
    assert configure_tls(new(), True, str(ca.ca_file), str(c1), str(k1)) is True
    with pytest.raises(BadInputError, match=f"--mqtt-cert-file {c1} / --mqtt-key-file {k2}: not usable"):
        configure_tls(new(), True, str(ca.ca_file), str(c1), str(k2))
    with pytest.raises(BadInputError, match="--mqtt-ca-file .*: not found"):
        configure_tls(new(), True, str(tmp_path / "ca-missing.pem"))
