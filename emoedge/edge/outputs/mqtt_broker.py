"""Where and as whom an MQTT client connects: the broker URL (:class:`MqttTarget`), credentials from a
password file or the environment, the device id in topics, and paho-mqtt itself (the ``[fleet]``
extra, imported only when a client is made), and the TLS files of a client (:func:`set_tls`: the CA that
verifies the broker, the client's own certificate and key for mutual TLS). Shared by the device's sink
(emoedge.edge.outputs.mqtt) and the fleet store's subscriber (emoedge.fleet.subscriber)."""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from emoedge.core.errors import BadInputError

DEFAULT_PREFIX = "emoedge"
MAX_PEM_BYTES = 1_000_000     # a CA bundle, a certificate or a key: far smaller; anything bigger is not one


@dataclass(frozen=True)
class MqttTarget:
    """Where to publish: ``mqtt://[user[:password]@]host[:port][/prefix]`` (``mqtts://``: TLS, port 8883)."""
    host: str
    port: int
    prefix: str = DEFAULT_PREFIX
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BadInputError(f"--mqtt {url!r}: expected mqtt://host[:port][/prefix] or mqtts://... for TLS")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise BadInputError(f"--mqtt {url!r}: bad port ({exc})") from None
        prefix = parts.path.strip("/") or DEFAULT_PREFIX
        if any(c in prefix for c in "+#") or parts.fragment or url.endswith("#"):
            raise BadInputError(f"--mqtt {url!r}: the topic prefix {prefix!r} may not contain the wildcards + or #")
        return cls(parts.hostname, port, prefix, parts.scheme == "mqtts",
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def topic(self, device: str, kind: str) -> str:
        return f"{self.prefix}/{device}/{kind}"

    def __str__(self) -> str:  # never the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/{self.prefix}"


def with_credentials(target: MqttTarget, username: str | None = None, password_file: str | None = None) -> MqttTarget:
    """``target`` with the user name given (else the URL's) and the password from ``password_file`` (else the
    URL's, else ``$EMOEDGE_MQTT_PASSWORD``); a password file that cannot be read is a :class:`BadInputError`
    naming it. Shared by the device's sink and the fleet's subscriber."""
    password = target.password
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise BadInputError(f"{password_file}: cannot read the MQTT password file: "
                                f"{exc.strerror or exc}") from exc
    password = password or os.environ.get("EMOEDGE_MQTT_PASSWORD")
    return dataclasses.replace(target, username=username or target.username, password=password)


def device_name(name: str | None = None) -> str:
    """The device id in topics: the given one, else the host name; one topic level (no /, +, #)."""
    d = name or socket.gethostname() or "emoedge"
    bad = [c for c in "/+#" if c in d]
    if bad or not d.strip():
        raise BadInputError(f"MQTT device id {d!r}: must be one topic level without {' '.join(bad) or 'blanks'}")
    return d


def load_paho():
    """``paho.mqtt.client``, or a :class:`BadInputError` saying how to install it."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise BadInputError("--mqtt needs paho-mqtt: pip install 'emoedge[fleet]' (or pip install paho-mqtt)") from None
    return mqtt


def check_tls_files(ca_file: str | Path | None = None, cert_file: str | Path | None = None,
                    key_file: str | Path | None = None) -> None:
    """The TLS files a client was given, checked before any connection: a client certificate comes with its key
    (both or neither), each file is a readable file of at most ``MAX_PEM_BYTES``, the CA file holds certificates,
    the key is unencrypted and belongs to the certificate. A :class:`BadInputError` names the file."""
    if (cert_file is None) != (key_file is None):
        given, path, missing = (("--mqtt-cert-file", cert_file, "--mqtt-key-file") if cert_file is not None
                                else ("--mqtt-key-file", key_file, "--mqtt-cert-file"))
        raise BadInputError(f"{given} {path}: a client certificate and its key come together; {missing} is missing")
    for what, path in (("CA certificate", ca_file), ("client certificate", cert_file), ("client key", key_file)):
        if path is not None:
            _check_readable(Path(path), what)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (ssl.SSLError, ValueError) as exc:
            raise BadInputError(f"{ca_file}: not a PEM CA certificate for MQTT TLS ({exc})") from None
    if cert_file is not None:
        try:     # password "": an encrypted key fails here instead of OpenSSL prompting on a terminal nobody watches
            context.load_cert_chain(str(cert_file), str(key_file), password="")
        except (ssl.SSLError, ValueError) as exc:
            raise BadInputError(f"{cert_file}, {key_file}: not a usable client certificate and key (PEM, the key "
                                f"unencrypted and belonging to the certificate): {exc}") from None


def _check_readable(path: Path, what: str) -> None:
    try:
        if not path.is_file():
            raise BadInputError(f"{path}: the MQTT {what} is not a file")
        size = path.stat().st_size
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the MQTT {what}: {exc.strerror or exc}") from None
    if size > MAX_PEM_BYTES:
        raise BadInputError(f"{path}: the MQTT {what} is {size:,} bytes; a PEM file is far below {MAX_PEM_BYTES:,}")


def set_tls(client, target: MqttTarget, ca_file: str | Path | None = None, cert_file: str | Path | None = None,
            key_file: str | Path | None = None) -> bool:
    """Turn TLS on for a paho ``client`` when ``target`` is ``mqtts://`` or any TLS file is given (files checked by
    :func:`check_tls_files`); ``cert_file``/``key_file``: mutual TLS. True when TLS is on."""
    check_tls_files(ca_file, cert_file, key_file)
    if not (target.tls or ca_file or cert_file):
        return False
    client.tls_set(ca_certs=None if ca_file is None else str(ca_file),
                   certfile=None if cert_file is None else str(cert_file),
                   keyfile=None if key_file is None else str(key_file), keyfile_password="")
    return True
