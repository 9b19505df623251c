"""The fleet store's MQTT subscriber: ``<prefix>/+/intervals`` and ``<prefix>/+/status`` (QoS 1, a
persistent session, so the broker queues what arrives while the store is down).

MQTT v5, for its Receive Maximum: the store lets the broker have ``RECEIVE_MAXIMUM`` messages in
flight to it, so a burst is sent on at once instead of waiting in the broker's queue for this one
consumer (Mosquitto's default queue holds 1,000 messages per client and drops the rest, after the
devices were told their messages arrived: with MQTT 3.1.1's 20 in flight a burst of 5,000 lost
~2,800). The session outlives a disconnect for ``SESSION_EXPIRY_S`` (v5 ends it at once otherwise).

The network thread only queues each message; a writer thread stores what has queued in one
transaction (a burst costs one commit, not one per message) and then acknowledges those messages
(manual PUBACK): a message is acknowledged once it is stored or refused for good, never before. A
database that fails (disk full) leaves its messages unacknowledged, and the broker sends them again
on the next connection. A broker that cannot be reached or refuses the store at start is an error
(:class:`BrokerError`, exit 3), not a quiet wait.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading

from emoedge.core.errors import EXIT_SOURCE
from emoedge.core.retry import Backoff
from emoedge.edge.outputs.mqtt_broker import load_paho
from emoedge.fleet.store import FleetStore

try:    # the project's own error base (exit 2-4 without a traceback), being introduced alongside this
    from emoedge.core.errors import EmoedgeError as _OwnError
except ImportError:   # before it: a RuntimeError carrying exit_code, which cli.main maps the same way
    _OwnError = RuntimeError

log = logging.getLogger(__name__)

BATCH = 500
RECEIVE_MAXIMUM = 10_000          # messages in flight to the store: a bound on its memory (<= 32 KB each)
SESSION_EXPIRY_S = 30 * 86400     # the broker keeps the store's session and its queue this long while it is down
# reconnecting to a lost broker (paho's own loop waits, doubling): the project's one policy, these numbers
RECONNECT = Backoff(first_s=0.2, max_s=10.0)


class BrokerError(_OwnError):
    """The broker cannot be reached or refused the connection; the message names it."""
    exit_code = EXIT_SOURCE


class FleetSubscriber:
    """Subscribes and stores what arrives; runs in its own threads (``start``) until ``stop``."""

    def __init__(self, target, store: FleetStore, client_id: str = "emoedge-fleet", ca_file: str | None = None):
        mqtt = load_paho()
        self.target, self.store = target, store
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        if target.tls or ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.reconnect_delay_set(RECONNECT.first_s, RECONNECT.max_s)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "status": 0, "rejected": 0, "failed": 0}
        self.connected = threading.Event()
        self.refused: str | None = None
        self._inbox: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="emoedge-fleet-writer", daemon=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("fleet: the broker %s refused the connection: %s", self.target, reason_code)
            return
        client.subscribe([(f"{self.target.prefix}/+/intervals", 1), (f"{self.target.prefix}/+/status", 1)])
        log.info("fleet: subscribed to %s/+/intervals and /status on %s", self.target.prefix, self.target)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not self._closing.is_set():
            log.warning("fleet: lost the broker %s (%s); reconnecting", self.target, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode(errors="replace")       # the store refuses it; it is still acknowledged
        self._inbox.put((topic, msg.payload, msg.mid, msg.qos))

    def _take(self) -> list[tuple]:
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        db = self.store.connect()
        try:
            while not (self._closing.is_set() and self._inbox.empty()):
                batch = self._take()
                if batch:
                    self._write(db, batch)
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, batch: list[tuple]) -> None:
        try:
            kinds = self.store.ingest_many(db, [(topic, payload) for topic, payload, _, _ in batch])
        except sqlite3.Error as exc:
            log.error("fleet: %s: %d message(s) not stored (%s); left unacknowledged, the broker sends them again",
                      self.store.path, len(batch), exc)
            self.counts["failed"] += len(batch)
            return
        except Exception:   # noqa: BLE001 (a bug: said with its traceback; the thread and the store keep going)
            log.exception("fleet: a batch of %d message(s) could not be stored; storing them one by one", len(batch))
            kinds = [self._one(db, topic, payload) for topic, payload, _, _ in batch]
        for kind in kinds:
            self.counts[kind] += 1
        if not self._closing.is_set():
            for _, _, mid, qos in batch:
                self.client.ack(mid, qos)

    def _one(self, db: sqlite3.Connection, topic: str, payload: bytes) -> str:
        try:
            return self.store.ingest(db, topic, payload)
        except Exception:   # noqa: BLE001 (acknowledged all the same: a message that breaks the store must not loop)
            log.exception("fleet: %.120s: message not stored: %r", topic, payload[:120])
            return "failed"

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (``BrokerError`` when the broker cannot be reached or refuses within ``timeout_s``),
        then subscribe and store in the background."""
        try:
            self.client.connect(self.target.host, self.target.port, keepalive=30, clean_start=False,
                                properties=_connect_properties())
        except (OSError, ValueError) as exc:
            raise BrokerError(f"fleet: cannot reach the broker {self.target}: {exc}") from exc
        self._writer.start()
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            self.stop()
            raise BrokerError(f"fleet: the broker {self.target} did not accept the store within {timeout_s:g} s"
                              + (f": {self.refused}" if self.refused else ""))

    def stop(self) -> None:
        self._closing.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._writer.is_alive():
            self._writer.join()


def _connect_properties():
    """CONNECT's v5 properties: a persistent session and a large receive window (see the module's text)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props
