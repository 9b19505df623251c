"""Interval summaries to an MQTT broker, store-and-forward (``emoedge run --mqtt mqtt://host:port/prefix``).

What leaves the box: interval summaries only (counts and shares per label, faces, frames, frames over
the latency budget, times, device, room, model); never a crop, a frame or a per-face event. Topics,
after Frigate's and the edge-AI convention: ``<prefix>/<device>/intervals`` (QoS 1, JSON) and
``<prefix>/<device>/status`` (retained ``online`` / ``offline``, ``offline`` also as the last will
when the box drops off).

Store-and-forward: each interval is committed to an outbox (SQLite) before anything is sent; a
publisher thread sends the outbox in order and marks a row sent only when the broker acknowledges
it (QoS 1 PUBACK). After an outage, a broker restart or a reboot, whatever was not acknowledged is
sent again, so a consumer may see an interval twice: the same ``interval_id`` both times, to drop
the duplicate. The frame loop only writes the outbox row (no network I/O, never waits on the broker).
A refused login or a TLS failure is logged once with the broker's reason and the outbox keeps
filling; it is sent when the broker accepts.

``paho-mqtt`` (the ``[fleet]`` extra) is imported when an MQTT sink is made, never otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from emoedge.core.errors import BadInputError, WriteError
from emoedge.core.fileio import create_sqlite, wal_connect
from emoedge.edge.outputs.records import IntervalSummary, RunInfo
from emoedge.edge.outputs.sinks import Sink

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = 1
DEFAULT_PREFIX = "emoedge"
OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    interval_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_unix_ns INTEGER NOT NULL,
    sent_unix_ns INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_unix_ns IS NULL;
"""


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
    import dataclasses

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


def interval_payload(s: IntervalSummary, device: str, model: str, room: str | None = None) -> dict:
    """The JSON published for one interval: aggregates only."""
    counts = {k: int(round(v * s.face_observations)) for k, v in s.share.items()}
    return {"schema": PAYLOAD_SCHEMA, "interval_id": s.interval_id, "device": device, "room": room,
            "model": model, "run_id": s.run_id, "start_utc": s.start_utc, "end_utc": s.end_utc,
            "start_unix_ns": s.start_unix_ns, "end_unix_ns": s.end_unix_ns, "duration_s": s.duration_s,
            "frames": s.frames, "faces_seen": s.faces_seen, "face_observations": s.face_observations,
            "counts": counts, "share": s.share, "uncertain_share": s.share.get("uncertain", 0.0),
            "mean_confidence": s.mean_confidence, "budget_misses": s.budget_misses,
            "budget_hit_rate": 1.0 - s.budget_misses / s.frames if s.frames else None}


MAX_PROBLEMS = 10     # distinct connection problems kept for the run summary


class Outbox:
    """The store of store-and-forward: one SQLite file, WAL; each thread uses its own connection.
    One that cannot be opened is refused before the first frame (bad input, exit 2)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        create_sqlite(self.path, OUTBOX_SCHEMA, "the MQTT outbox", BadInputError, full_sync=True)

    def connect(self) -> sqlite3.Connection:
        return wal_connect(self.path, full_sync=True)

    @staticmethod
    def add(db: sqlite3.Connection, interval_id: str, payload: str) -> None:
        with db:
            db.execute("INSERT OR IGNORE INTO outbox (interval_id, payload, created_unix_ns) VALUES (?, ?, ?)",
                       (interval_id, payload, time.time_ns()))

    @staticmethod
    def pending(db: sqlite3.Connection, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
        return db.execute("SELECT seq, interval_id, payload FROM outbox WHERE sent_unix_ns IS NULL AND seq > ? "
                          "ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()

    @staticmethod
    def prune(db: sqlite3.Connection, keep_sent_s: float) -> int:
        """Delete rows acknowledged more than ``keep_sent_s`` ago (the summaries database keeps the
        intervals; the outbox only what is still to send and a short history): the file stays bounded."""
        cutoff = time.time_ns() - int(keep_sent_s * 1e9)
        with db:
            return db.execute("DELETE FROM outbox WHERE sent_unix_ns IS NOT NULL AND sent_unix_ns < ?",
                              (cutoff,)).rowcount

    @staticmethod
    def mark_sent(db: sqlite3.Connection, seqs: list[int]) -> None:
        with db:
            db.executemany("UPDATE outbox SET sent_unix_ns = ? WHERE seq = ?", [(time.time_ns(), s) for s in seqs])

    def counts(self) -> dict[str, int]:
        db = self.connect()
        try:
            sent, unsent = db.execute("SELECT COUNT(sent_unix_ns), COUNT(*) - COUNT(sent_unix_ns) "
                                      "FROM outbox").fetchone()
        finally:
            db.close()
        return {"sent": sent, "unsent": unsent}


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise BadInputError("--mqtt needs paho-mqtt: pip install 'emoedge[fleet]' (or pip install paho-mqtt)") from None
    return mqtt


class MqttSink(Sink):
    """Interval summaries to ``target`` through the outbox at ``outbox_path`` (see the module)."""

    def __init__(self, target: MqttTarget, outbox_path: str | Path, device: str | None = None,
                 room: str | None = None, model: str = "", ca_file: str | None = None,
                 flush_timeout_s: float = 10.0, retry_min_s: float = 0.5, retry_max_s: float = 15.0,
                 max_in_flight: int = 20, keep_sent_s: float = 7 * 86400.0):
        self.target = target
        self.device = device_name(device)
        self.room = room
        self.model = model
        self.flush_timeout_s = flush_timeout_s
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.max_in_flight = max_in_flight
        self.keep_sent_s = keep_sent_s
        if ca_file and not Path(ca_file).is_file():
            raise BadInputError(f"{ca_file}: MQTT CA file not found")
        self.outbox = Outbox(outbox_path)
        self.path = self.outbox.path
        self._db = self.outbox.connect()          # the frame loop's connection (on_interval)
        mqtt = _paho()
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"emoedge-{self.device}",
                                  clean_session=True, reconnect_on_failure=False)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        if target.tls or ca_file:
            self.client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self.status_topic = target.topic(self.device, "status")
        self.intervals_topic = target.topic(self.device, "intervals")
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.max_inflight_messages_set(max_in_flight)
        self.client.connect_timeout = 5.0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._connected = False
        self._refused = False                      # the last CONNACK said no (bad login, not authorised)
        self._in_flight: dict[int, int] = {}      # paho message id -> outbox seq
        self._acked: list[int] = []
        self._last_problem: str | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0                         # intervals acknowledged by the broker in this run
        self.enqueued = 0
        self.enqueue_ns = 0                        # frame-loop time spent storing intervals in the outbox
        self.publisher_cpu_ns = 0                  # CPU time of the publisher thread (network, JSON, SQLite)
        self.problems: list[str] = []              # distinct connection problems, in order (MAX_PROBLEMS)
        self.outages = 0                           # connection problems, each outage once

    # -- the frame loop's side ----------------------------------------------------------------
    def on_start(self, run: RunInfo) -> None:
        # the model's name, not its path on this box: fast.int8.tflite -> fast
        self.model = self.model or (Path(run.model).name.split(".")[0] if run.model else "")
        self._thread = threading.Thread(target=self._run, name="emoedge-mqtt", daemon=True)
        self._thread.start()

    def on_interval(self, s: IntervalSummary) -> None:
        t = time.perf_counter_ns()
        payload = json.dumps(interval_payload(s, self.device, self.model, self.room), separators=(",", ":"))
        try:
            Outbox.add(self._db, s.interval_id, payload)
        except sqlite3.Error as exc:
            raise WriteError(f"{self.path}: interval {s.interval_id} not stored for MQTT: {exc}") from exc
        self.enqueued += 1
        self.enqueue_ns += time.perf_counter_ns() - t
        self._wake.set()

    def close(self) -> None:
        """Send what is left for up to ``flush_timeout_s``, then say ``offline`` and disconnect; what is
        still unsent stays in the outbox for the next run."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.flush_timeout_s + 10)
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise WriteError(f"{self.path}: closing the MQTT outbox failed: {exc}") from exc
        left = self.outbox.counts()["unsent"]
        stats = self.stats(left)
        try:
            self.path.with_name(self.path.stem + ".stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        except OSError as exc:
            log.warning("MQTT: the publishing statistics were not written beside %s: %s", self.path, exc)
        log.info("MQTT %s: %d interval(s) stored, %d acknowledged this run, %d unsent; CPU per interval: %.2f ms "
                 "in the frame loop (outbox), %.2f ms in the publisher thread", self.target, self.enqueued,
                 self.published, left, stats["enqueue_ms_per_interval"], stats["publisher_cpu_ms_per_interval"])
        if left:
            log.warning("MQTT %s: %d interval(s) not acknowledged yet, kept in %s for the next run",
                        self.target, left, self.path)

    def stats(self, unsent: int) -> dict:
        """This run's publishing figures (written beside the outbox as ``<outbox>.stats.json`` at close)."""
        return {"device": self.device, "broker": str(self.target), "intervals_stored": self.enqueued,
                "acknowledged": self.published, "unsent": unsent,
                "enqueue_ms_per_interval": self.enqueue_ns / 1e6 / max(1, self.enqueued),
                "publisher_cpu_ms": self.publisher_cpu_ns / 1e6,
                "publisher_cpu_ms_per_interval": self.publisher_cpu_ns / 1e6 / max(1, self.published),
                "problems": self.problems, "outages": self.outages}

    # -- the publisher thread -----------------------------------------------------------------
    def _problem(self, what: str) -> None:
        """Log a connection problem once per outage; keep each distinct one once, at most MAX_PROBLEMS
        (a broker that drops the sensor every minute for a year adds no memory)."""
        if what != self._last_problem:
            log.error("MQTT %s: %s; intervals are kept in %s and sent when the broker accepts", self.target, what,
                      self.path)
            self.outages += 1
            if what not in self.problems and len(self.problems) < MAX_PROBLEMS:
                self.problems.append(what)
        self._last_problem = what

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._problem(f"the broker refused the connection: {reason_code}")
            return
        self._connected = True
        if self._last_problem:
            log.warning("MQTT %s: connected again after: %s", self.target, self._last_problem)
        self._last_problem = None
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connected = False
        self._in_flight.clear()                    # unacknowledged rows are sent again after reconnecting

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        seq = self._in_flight.pop(mid, None)
        if seq is not None:
            self._acked.append(seq)

    def _connect(self) -> bool:
        self._refused = False
        try:
            self.client.connect(self.target.host, self.target.port, keepalive=30)
            return True
        except ssl.SSLError as exc:
            self._problem(f"TLS failed: {exc.reason or exc}: {getattr(exc, 'verify_message', '') or exc}")
        except ConnectionResetError as exc:
            self._problem(("TLS failed: the broker closed the connection during the handshake (is the port a TLS "
                           "listener?)" if self.target.tls else "cannot connect: ") + f" {exc.strerror or exc}")
        except OSError as exc:
            self._problem(f"cannot connect: {exc.strerror or exc}")
        return False

    def _run(self) -> None:
        cpu0 = time.thread_time_ns()
        db = self.outbox.connect()
        next_prune = 0.0
        delay = self.retry_min_s
        deadline = None
        socket_open = False
        try:
            while True:
                if self._closing.is_set() and deadline is None:
                    deadline = time.monotonic() + self.flush_timeout_s
                if deadline is not None and (time.monotonic() > deadline or
                                             (self._connected and not self._in_flight and
                                              not Outbox.pending(db, 0, 1))):
                    break
                if not socket_open:
                    socket_open = self._connect()
                    if not socket_open:
                        left = None if deadline is None else max(0.0, deadline - time.monotonic())
                        self._wake.wait(delay if left is None else min(delay, left))
                        self._wake.clear()
                        delay = min(self.retry_max_s, delay * 2)
                        continue
                # short waits while messages are in flight or closing; when idle, a second (keepalive and the
                # next interval; an idle poll costs CPU on a small board)
                busy = bool(self._in_flight) or deadline is not None or not self._connected
                rc = self.client.loop(timeout=0.05 if busy else 1.0)
                if rc != self._mqtt.MQTT_ERR_SUCCESS or self._refused:
                    # lost, or refused at CONNACK: close the socket, wait, connect again
                    self._on_disconnect(self.client, None, None, None)
                    try:
                        self.client.disconnect()
                    except OSError as exc:
                        log.debug("MQTT disconnect after a failure: %s", exc)
                    socket_open = False
                    if self._last_problem is None:
                        self._problem(f"connection lost ({self._mqtt.error_string(rc)})")
                    self._wake.wait(delay)
                    self._wake.clear()
                    delay = min(self.retry_max_s, delay * 2)
                    continue
                if self._acked:
                    done, self._acked = self._acked, []
                    Outbox.mark_sent(db, done)
                    self.published += len(done)
                if time.monotonic() >= next_prune:       # at start, then hourly
                    n = Outbox.prune(db, self.keep_sent_s)
                    if n:
                        log.info("MQTT outbox %s: %d acknowledged interval(s) older than %g days deleted", self.path,
                                 n, self.keep_sent_s / 86400)
                    next_prune = time.monotonic() + 3600
                if self._connected:
                    delay = self.retry_min_s
                    self._send(db)
        except sqlite3.Error as exc:
            log.error("MQTT %s: the outbox %s failed (%s): publishing stopped; intervals are still stored by the "
                      "other sinks", self.target, self.path, exc)
        finally:
            if socket_open and self._connected:
                self.client.publish(self.status_topic, "offline", qos=1, retain=True)
                for _ in range(20):
                    if self.client.loop(timeout=0.05) != self._mqtt.MQTT_ERR_SUCCESS:
                        break
                if self._acked:
                    Outbox.mark_sent(db, self._acked)
                    self.published += len(self._acked)
                self.client.disconnect()
            db.close()
            self.publisher_cpu_ns = time.thread_time_ns() - cpu0

    def _send(self, db: sqlite3.Connection) -> None:
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return
        last = max(self._in_flight.values(), default=0)
        for seq, _iid, payload in Outbox.pending(db, last, room):
            info = self.client.publish(self.intervals_topic, payload, qos=1)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                break
            self._in_flight[info.mid] = seq


def default_outbox(db: str | None) -> Path:
    """Beside the summaries database when there is one, else in the working folder."""
    if db:
        return Path(db).with_name(Path(db).stem + ".mqtt-outbox.sqlite")
    return Path(os.getcwd()) / "emoedge.mqtt-outbox.sqlite"
