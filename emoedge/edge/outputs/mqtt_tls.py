"""TLS for an MQTT client: the broker's CA and, for mutual TLS, this client's certificate and key
(``--mqtt-ca-file``, ``--mqtt-cert-file``, ``--mqtt-key-file``). The files are checked before paho
reads them, so a missing or unreadable one, half a pair, or a key under a passphrase (OpenSSL would
ask for it on the terminal of a service) is a :class:`BadInputError` naming the flag, not a hang or
a traceback; a private key that others may read is warned about. Used by the device's MQTT sink;
the paho client is passed in (this module does not import paho)."""

from __future__ import annotations

import logging
import os
import ssl
import stat
from pathlib import Path

from emoedge.core.errors import BadInputError

log = logging.getLogger(__name__)

MAX_PEM_BYTES = 1 << 20     # a certificate chain or key file larger than this is not one


def _readable(path: str, flag: str) -> bytes:
    p = Path(path)
    try:
        if not p.is_file():
            raise BadInputError(f"{flag} {path}: not found (or not a file)")
        if p.stat().st_size > MAX_PEM_BYTES:
            raise BadInputError(f"{flag} {path}: {p.stat().st_size} bytes, not a PEM file (at most {MAX_PEM_BYTES})")
        return p.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{flag} {path}: cannot be read: {exc.strerror or exc}") from None


def check_client_cert(cert_file: str | None, key_file: str | None) -> tuple[str, str] | None:
    """``(cert_file, key_file)`` for mutual TLS once both are checked, None when neither is given."""
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        given, missing = ("--mqtt-cert-file", "--mqtt-key-file") if cert_file else ("--mqtt-key-file",
                                                                                   "--mqtt-cert-file")
        raise BadInputError(f"{given} needs {missing} too (mqtt_cert_file and mqtt_key_file: both or neither)")
    if b"-----BEGIN" not in _readable(cert_file, "--mqtt-cert-file"):
        raise BadInputError(f"--mqtt-cert-file {cert_file}: not a PEM certificate")
    key = _readable(key_file, "--mqtt-key-file")
    if b"ENCRYPTED" in key:
        raise BadInputError(f"--mqtt-key-file {key_file}: the private key is encrypted (a passphrase); a device "
                            f"needs an unencrypted key readable only by its user (openssl pkey -in KEY -out NEW)")
    if b"PRIVATE KEY-----" not in key:
        raise BadInputError(f"--mqtt-key-file {key_file}: not a PEM private key")
    mode = os.stat(key_file).st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("--mqtt-key-file %s: the private key is readable by %s (mode %s): chmod 600 it", key_file,
                    "others" if mode & stat.S_IROTH else "its group", oct(stat.S_IMODE(mode)))
    return cert_file, key_file


def configure_tls(client, tls: bool, ca_file: str | None = None, cert_file: str | None = None,
                  key_file: str | None = None) -> bool:
    """Call paho's ``client.tls_set`` when ``tls`` (mqtts://) or any file asks for it: the broker's
    certificate verified (against ``ca_file``, else the system's CAs), and this client's certificate
    and key presented when given. Returns whether TLS is on."""
    if ca_file:
        _readable(ca_file, "--mqtt-ca-file")
    pair = check_client_cert(cert_file, key_file)
    if not (tls or ca_file or pair):
        return False
    try:
        client.tls_set(ca_certs=ca_file, certfile=pair[0] if pair else None, keyfile=pair[1] if pair else None,
                       cert_reqs=ssl.CERT_REQUIRED)
    except (ssl.SSLError, ValueError) as exc:
        what = f"--mqtt-cert-file {cert_file} / --mqtt-key-file {key_file}" if pair else f"--mqtt-ca-file {ca_file}"
        raise BadInputError(f"{what}: not usable for TLS (a certificate that does not match its key, or not "
                            f"PEM?): {exc}") from None
    return True
