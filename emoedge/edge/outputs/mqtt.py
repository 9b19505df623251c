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

With ``ha_prefix`` (``--ha-discovery``), the box also announces itself to Home Assistant: a retained
device discovery config (emoedge.edge.outputs.ha_discovery) published on every (re)connect and again
whenever Home Assistant says ``online`` on ``<ha_prefix>/status``. Mutual TLS: ``cert_file`` and
``key_file`` (emoedge.edge.outputs.mqtt_tls) are presented to a broker that asks for a client certificate.

This module is the sink and its publisher thread; the broker URL and credentials are
emoedge.edge.outputs.mqtt_broker, the outbox emoedge.edge.outputs.mqtt_outbox. Reconnecting waits by
the project's one policy (:class:`emoedge.core.retry.Backoff`): ``retry_min_s``, doubled per failure
up to ``retry_max_s``.

``paho-mqtt`` (the ``[mqtt]`` extra) is imported when an MQTT sink is made, never otherwise.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from emoedge.core.errors import WriteError
from emoedge.core.retry import Backoff
from emoedge.edge.outputs.ha_discovery import HaDiscovery, discovery_message, emoedge_version
from emoedge.edge.outputs.mqtt_broker import MqttTarget, device_name, load_paho, with_credentials
from emoedge.edge.outputs.mqtt_outbox import Outbox, default_outbox
from emoedge.edge.outputs.mqtt_tls import configure_tls
from emoedge.edge.outputs.records import IntervalSummary, RunInfo
from emoedge.edge.outputs.sinks import Sink

# MqttTarget, with_credentials, device_name (mqtt_broker) and Outbox, default_outbox (mqtt_outbox) are
# imported from here as well: the names of MQTT output
__all__ = ["MAX_PROBLEMS", "PAYLOAD_SCHEMA", "MqttSink", "MqttTarget", "Outbox", "default_outbox", "device_name",
           "interval_payload", "with_credentials"]

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = 1


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


class MqttSink(Sink):
    """Interval summaries to ``target`` through the outbox at ``outbox_path`` (see the module)."""

    def __init__(self, target: MqttTarget, outbox_path: str | Path, device: str | None = None,
                 room: str | None = None, model: str = "", ca_file: str | None = None,
                 flush_timeout_s: float = 10.0, retry_min_s: float = 0.5, retry_max_s: float = 15.0,
                 max_in_flight: int = 20, keep_sent_s: float = 7 * 86400.0, cert_file: str | None = None,
                 key_file: str | None = None, ha_prefix: str | None = None, labels: Sequence[str] = (),
                 interval_s: float = 60.0):
        self.target = target
        self.device = device_name(device)
        self.room = room
        self.model = model
        self.flush_timeout_s = flush_timeout_s
        # reconnects: retry_min_s, doubled per failure up to retry_max_s (the project's one policy)
        self.backoff = Backoff(first_s=retry_min_s, max_s=retry_max_s)
        self.max_in_flight = max_in_flight
        self.keep_sent_s = keep_sent_s
        self.status_topic = target.topic(self.device, "status")
        self.intervals_topic = target.topic(self.device, "intervals")
        self.ha_prefix, self.labels, self.interval_s = ha_prefix, tuple(labels), interval_s
        self.ha: HaDiscovery | None = self._discovery() if ha_prefix else None   # checked now, rebuilt at start
        mqtt = load_paho()
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"emoedge-{self.device}",
                                  clean_session=True, reconnect_on_failure=False)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        configure_tls(self.client, target.tls, ca_file, cert_file, key_file)   # mutual TLS with a client cert
        self.outbox = Outbox(outbox_path)          # bad input is said before any file is made
        self.path = self.outbox.path
        self._db = self.outbox.connect()          # the frame loop's connection (on_interval)
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.max_inflight_messages_set(max_in_flight)
        self.client.connect_timeout = 5.0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
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
        self.ha_published = 0                      # Home Assistant discovery configs published

    # -- the frame loop's side ----------------------------------------------------------------
    def on_start(self, run: RunInfo) -> None:
        # the model's name, not its path on this box: fast.int8.tflite -> fast
        self.model = self.model or (Path(run.model).name.split(".")[0] if run.model else "")
        if self.ha_prefix:
            self.ha = self._discovery()          # with the model's name
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
                "problems": self.problems, "outages": self.outages, "ha_discovery_published": self.ha_published}

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
        if self.ha is not None:                    # on every (re)connect: the retained config, and HA's status
            client.subscribe(self.ha.ha_status_topic, qos=1)
            self._publish_discovery("connected")
        self._wake.set()

    # -- Home Assistant discovery (emoedge.edge.outputs.ha_discovery) --------------------------
    def _discovery(self) -> HaDiscovery:
        return discovery_message(self.ha_prefix, self.device, self.labels, self.intervals_topic, self.status_topic,
                                 self.interval_s, self.room, self.model, emoedge_version())

    def _publish_discovery(self, why: str) -> None:
        info = self.client.publish(self.ha.topic, self.ha.payload, qos=1, retain=True)
        self.ha_published += 1
        log.info("MQTT %s: Home Assistant discovery (%s): %d sensor(s) to %s (%s, rc %s)", self.target, why,
                 self.ha.components, self.ha.topic, f"{len(self.ha.payload)} bytes", info.rc)

    def _on_message(self, client, userdata, msg) -> None:
        """Home Assistant said ``online`` on PREFIX/status (it started again): the config once more. A
        retained ``online`` delivered at subscribing is not news (the config was just sent)."""
        if self.ha is not None and msg.topic == self.ha.ha_status_topic and msg.payload == b"online" \
                and not msg.retain:
            self._publish_discovery("Home Assistant is online")

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
        self.backoff.reset()
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
                        delay = self.backoff.next_delay_s()
                        self._wake.wait(delay if left is None else min(delay, left))
                        self._wake.clear()
                        continue
                # short waits while messages are in flight or closing; when idle, a second (keepalive and the
                # next interval; an idle poll costs CPU on a small board)
                busy = bool(self._in_flight) or deadline is not None or not self._connected
                rc = self.client.loop(timeout=0.05 if busy else 1.0)
                if rc != self._mqtt.MQTT_ERR_SUCCESS or self._refused:
                    socket_open = self._drop_connection(rc)
                    self._wake.wait(self.backoff.next_delay_s())
                    self._wake.clear()
                    continue
                if self._acked:
                    done, self._acked = self._acked, []
                    Outbox.mark_sent(db, done)
                    self.published += len(done)
                if time.monotonic() >= next_prune:       # at start, then hourly
                    self._prune(db)
                    next_prune = time.monotonic() + 3600
                if self._connected:
                    self.backoff.reset()
                    self._send(db)
        except sqlite3.Error as exc:
            log.error("MQTT %s: the outbox %s failed (%s): publishing stopped; intervals are still stored by the "
                      "other sinks", self.target, self.path, exc)
        finally:
            if socket_open and self._connected:
                self._say_offline(db)
            db.close()
            self.publisher_cpu_ns = time.thread_time_ns() - cpu0

    def _drop_connection(self, rc: int) -> bool:
        """Lost, or refused at CONNACK: close the socket (to wait and connect again); False: not open."""
        accepted = self._connected                 # a CONNACK came on this connection
        self._on_disconnect(self.client, None, None, None)
        try:
            self.client.disconnect()
        except OSError as exc:
            log.debug("MQTT disconnect after a failure: %s", exc)
        if self._last_problem is None and not accepted and self.target.tls:
            self._problem(f"TLS failed: the broker closed the connection before accepting it "
                          f"({self._mqtt.error_string(rc)}): does it require a client certificate "
                          f"(--mqtt-cert-file, --mqtt-key-file), or one signed by another CA?")
        elif self._last_problem is None:
            self._problem(f"connection lost ({self._mqtt.error_string(rc)})")
        return False

    def _prune(self, db: sqlite3.Connection) -> None:
        n = Outbox.prune(db, self.keep_sent_s)
        if n:
            log.info("MQTT outbox %s: %d acknowledged interval(s) older than %g days deleted", self.path,
                     n, self.keep_sent_s / 86400)

    def _say_offline(self, db: sqlite3.Connection) -> None:
        """At close, connected: the retained ``offline``, the last acknowledgements stored, disconnect."""
        self.client.publish(self.status_topic, "offline", qos=1, retain=True)
        for _ in range(20):
            if self.client.loop(timeout=0.05) != self._mqtt.MQTT_ERR_SUCCESS:
                break
        if self._acked:
            Outbox.mark_sent(db, self._acked)
            self.published += len(self._acked)
        self.client.disconnect()

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
