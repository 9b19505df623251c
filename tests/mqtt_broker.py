"""A real Mosquitto on 127.0.0.1 for the tests (Debian package ``mosquitto``; `.ci/run` installs it),
and a subscriber that collects what arrives. Tests skip, saying why, where Mosquitto is absent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mqtt_pki import ThrowawayCA

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def need_mosquitto() -> str:
    if MOSQUITTO is None:
        pytest.skip("no mosquitto broker on this machine (apt-get install mosquitto; .ci/run installs it)")
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        pytest.skip("paho-mqtt is not installed (pip install -e '.[fleet]')")
    return MOSQUITTO


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """``mosquitto -c`` on 127.0.0.1:port; ``users``: {name: password} turns anonymous access off.

    ``tls``: the listener speaks TLS with a server certificate from a throwaway CA (``ca_file`` verifies it);
    ``require_certificate``: clients must show a certificate from that CA (``client_cert(name)`` makes one), and with
    ``use_identity_as_username`` its common name is the user name; ``acl_file``: Mosquitto's ACL file.
    :meth:`from_config` starts a configuration written elsewhere (deploy/mosquitto/ rendered by a test)."""

    def __init__(self, folder: Path, port: int | None = None, users: dict[str, str] | None = None,
                 tls: bool = False, max_queued: int | None = 100_000, require_certificate: bool = False,
                 acl_file: Path | str | None = None, use_identity_as_username: bool = False):
        self._setup(folder, port)
        # persistence: a subscriber's session (clean_session false) and its queued QoS 1 messages survive a
        # broker restart, as a fleet store's do in production; saved every second and at shutdown
        conf = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {self.folder}/",
                "autosave_interval 1", f"log_dest file {self.folder / 'broker.log'}"]
        if max_queued is not None:           # None: Mosquitto's own default (1,000 per client)
            conf.append(f"max_queued_messages {max_queued}")
        if tls or require_certificate:
            conf += self._tls(require_certificate, use_identity_as_username)
        if _running_as_root():
            conf.append("user root")       # else mosquitto drops to user 'mosquitto', who cannot write here
        if acl_file is not None:
            conf.append(f"acl_file {acl_file}")
        if users:
            conf += ["allow_anonymous false", f"password_file {self._passwords(users)}"]
        else:
            conf += [f"allow_anonymous {'false' if use_identity_as_username else 'true'}"]
        self.conf.write_text("\n".join(conf) + "\n")

    def _setup(self, folder: Path, port: int | None) -> None:
        self.exe = need_mosquitto()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.ca: ThrowawayCA | None = None
        self.ca_file: Path | None = None
        self.conf = self.folder / "mosquitto.conf"

    @classmethod
    def from_config(cls, folder: Path, text: str, port: int, ca: ThrowawayCA | None = None) -> Broker:
        """A broker running ``text`` as its mosquitto.conf (listening on ``port``); ``ca``: the CA its TLS uses."""
        broker = cls.__new__(cls)
        broker._setup(folder, port)
        broker.ca, broker.ca_file = ca, ca.ca_file if ca else None
        broker.conf.write_text(text)
        return broker

    def _tls(self, require_certificate: bool, use_identity_as_username: bool) -> list[str]:
        """The listener's TLS lines: a server certificate for 127.0.0.1 from a throwaway CA."""
        self.ca = ThrowawayCA(self.folder / "pki")
        self.ca_file = self.ca.ca_file
        cert, key = self.ca.server_cert()
        conf = [f"certfile {cert}", f"keyfile {key}"]
        if require_certificate:
            conf += [f"cafile {self.ca.ca_file}", "require_certificate true"]
            if use_identity_as_username:
                conf.append("use_identity_as_username true")
        return conf

    def _passwords(self, users: dict[str, str]) -> Path:
        pw = self.folder / "passwd"
        pw.write_text("")
        for name, password in users.items():
            subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(pw), name,
                            password], check=True, capture_output=True)
        return pw

    def client_cert(self, name: str) -> tuple[Path, Path]:
        """(cert_path, key_path) of a client certificate with common name ``name``, signed by this broker's CA."""
        if self.ca is None:
            raise RuntimeError("client_cert: this broker has no TLS (Broker(..., tls=True))")
        return self.ca.client_cert(name)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca_file else 'mqtt'}://127.0.0.1:{self.port}/test"

    def start(self) -> Broker:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-500:]}") from None
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within 10 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class Subscriber:
    """Collects every message under ``topic`` (QoS 1) from a broker; ``intervals()``: the payloads."""

    def __init__(self, port: int, topic: str = "test/#", username: str | None = None, password: str | None = None,
                 client_id: str = "test-subscriber", ca_file: Path | None = None,
                 cert: tuple[Path, Path] | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file), certfile=str(cert[0]) if cert else None,
                                keyfile=str(cert[1]) if cert else None)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        time.sleep(0.3)

    def registered(self, broker: Broker) -> Subscriber:
        """Wait until the broker has saved this subscriber's session (autosave every second)."""
        time.sleep(1.5)
        return self

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def intervals(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/intervals")]

    def statuses(self) -> list[tuple[str, str, bool]]:
        with self.lock:
            return [(t, p.decode(), r) for t, p, r in self.messages if t.endswith("/status")]

    def wait_for(self, n: int, timeout_s: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len({m["interval_id"] for m in self.intervals()}) < n:
            time.sleep(0.05)
        return self.intervals()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
