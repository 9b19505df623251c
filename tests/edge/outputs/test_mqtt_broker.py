"""emoedge.edge.outputs.mqtt_broker: the TLS files of an MQTT client checked before any connection (exit 2 naming
the file), with certificates from the tests' throwaway CA."""

from __future__ import annotations

import subprocess

import pytest
from mqtt_tls import ThrowawayCA

from emoedge.core.errors import BadInputError
from emoedge.edge.outputs.mqtt_broker import MAX_PEM_BYTES, MqttTarget, check_tls_files, set_tls


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("pki"))


def test_a_certificate_its_key_and_the_ca_pass(ca):
    cert, key = ca.client_cert("k1")
    check_tls_files(ca.ca_file, cert, key)
    check_tls_files(ca.ca_file)
    check_tls_files()


def test_a_certificate_without_its_key_or_a_key_alone_is_refused_naming_the_flag(ca):
    cert, key = ca.client_cert("k1")
    with pytest.raises(BadInputError, match=f"--mqtt-cert-file {cert}: .*--mqtt-key-file is missing"):
        check_tls_files(ca.ca_file, cert, None)
    with pytest.raises(BadInputError, match=f"--mqtt-key-file {key}: .*--mqtt-cert-file is missing"):
        check_tls_files(None, None, key)


def test_missing_folder_huge_and_garbage_files_are_refused_naming_them(ca, tmp_path):
    cert, key = ca.client_cert("k1")
    missing = tmp_path / "nope.pem"
    with pytest.raises(BadInputError, match=f"{missing}: .*client certificate is not a file"):
        check_tls_files(None, missing, key)
    with pytest.raises(BadInputError, match=f"{tmp_path}: .*CA certificate is not a file"):
        check_tls_files(tmp_path)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-" * (MAX_PEM_BYTES + 1))
    with pytest.raises(BadInputError, match=f"{huge}: the MQTT client key is 1,000,001 bytes"):
        check_tls_files(None, cert, huge)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(BadInputError, match=f"{garbage}: not a PEM CA certificate"):
        check_tls_files(garbage)
    with pytest.raises(BadInputError, match=f"{garbage}, {key}: not a usable client certificate"):
        check_tls_files(None, garbage, key)


def test_a_key_of_another_certificate_or_an_encrypted_key_is_refused_without_a_prompt(ca, tmp_path):
    cert, _ = ca.client_cert("k1")
    _, other_key = ca.client_cert("k2")
    with pytest.raises(BadInputError, match="not a usable client certificate and key"):
        check_tls_files(ca.ca_file, cert, other_key)
    encrypted = tmp_path / "encrypted.key"
    subprocess.run([ca.exe, "pkey", "-in", str(ca.client_cert("k1")[1]), "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True)
    with pytest.raises(BadInputError, match="the key unencrypted"):      # OpenSSL would prompt on the terminal
        check_tls_files(ca.ca_file, cert, encrypted)


class _Client:
    def __init__(self):
        self.tls = None

    def tls_set(self, **kwargs):
        self.tls = kwargs


def test_set_tls_turns_tls_on_for_mqtts_or_any_file_and_passes_the_files(ca):
    plain, secure = MqttTarget.parse("mqtt://h/x"), MqttTarget.parse("mqtts://h/x")
    c = _Client()
    assert set_tls(c, plain) is False and c.tls is None
    assert set_tls(c, secure) is True and c.tls["ca_certs"] is None and c.tls["certfile"] is None
    cert, key = ca.client_cert("k1")
    assert set_tls(c, plain, ca.ca_file, cert, key) is True
    assert (c.tls["ca_certs"], c.tls["certfile"], c.tls["keyfile"]) == (str(ca.ca_file), str(cert), str(key))
