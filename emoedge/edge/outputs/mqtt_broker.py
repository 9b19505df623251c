"""Where and as whom an MQTT client connects: the broker URL (:class:`MqttTarget`), credentials from a
password file or the environment, the device id in topics, and paho-mqtt itself (the ``[mqtt]``
extra, imported only when a client is made). Shared by the device's sink (emoedge.edge.outputs.mqtt)
and the fleet store's subscriber (emoedge.fleet.subscriber)."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from emoedge.core.errors import BadInputError, brief
from emoedge.core.fileio import read_small_file

DEFAULT_PREFIX = "emoedge"
MAX_DEVICE_CHARS = 128             # a device id (the fleet store accepts names up to the same length)
MAX_PASSWORD_FILE_BYTES = 4096


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
    if password_file:   # a regular file of at most 4 KiB (a FIFO would hang the start, /dev/zero eat memory)
        raw = read_small_file(password_file, "the MQTT password file", MAX_PASSWORD_FILE_BYTES, BadInputError)
        try:
            password = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadInputError(f"{password_file}: the MQTT password file is not UTF-8 text") from None
    password = password or os.environ.get("EMOEDGE_MQTT_PASSWORD")
    return dataclasses.replace(target, username=username or target.username, password=password)


def device_name(name: str | None = None) -> str:
    """The device id in topics: the given one, else the host name; one topic level (no /, +, #)."""
    d = name or socket.gethostname() or "emoedge"
    if len(d) > MAX_DEVICE_CHARS:      # an MQTT topic is at most 65,535 bytes; a page shows the id
        raise BadInputError(f"MQTT device id {brief(d, 60)}: longer than {MAX_DEVICE_CHARS} characters")
    bad = [c for c in "/+#\0" if c in d]
    if bad or not d.strip() or not d.isprintable():
        raise BadInputError(f"MQTT device id {d!r}: must be one topic level of printable characters without "
                            f"{' '.join(repr(c) for c in bad) or 'blanks'}")
    return d


def load_paho():
    """``paho.mqtt.client``, or a :class:`BadInputError` saying how to install it."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise BadInputError("--mqtt needs paho-mqtt: pip install 'emoedge[mqtt]' (or pip install paho-mqtt)") from None
    return mqtt
