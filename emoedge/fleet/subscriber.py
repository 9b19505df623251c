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

Several workers (``share_group``): each subscribes to ``$share/GROUP/PREFIX/+/intervals`` (an MQTT v5 shared
subscription, Mosquitto 2.x), so the broker hands each interval to one member of the group, and to
``PREFIX/+/status`` as before (every worker writes the statuses: idempotent upserts). Each worker needs its own
client id and so its own persistent session: Mosquitto 2.0 deals a shared subscription's messages round-robin over
the group's sessions, connected or not, and queues a disconnected member's share in that member's session; nothing
queued for a dead worker moves to the live ones (checked in the source, src/subs.c ``subs__shared_process``, and
in tests/fleet/test_workers.py). The restart with the same client id recovers them: the broker sends the session's
queue, and the in-flight messages left unacknowledged, again. A worker that never comes back leaves its share in the
broker until its session expires (``SESSION_EXPIRY_S``), and keeps being dealt its share meanwhile: a worker
taken out of service leaves with :meth:`FleetSubscriber.retire` (unsubscribe, store what its session holds, end the
session). Mosquitto 2.0's ACL file checks deliveries, not subscriptions, so any client may join a group and the
broker drops the turns of one that may not read: the group name is a secret among the workers.
deploy/mosquitto/README.md says how to run workers.

A database that fails (a locked SQLite file, a PostgreSQL server restarting) is retried: the batch is written again
on a new connection after a growing wait (``DB_RETRY``), its messages unacknowledged meanwhile; at ``stop`` what
could not be written stays unacknowledged and comes back with the next session.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sqlite3
import threading
import time

from emoedge.core.errors import EXIT_SOURCE, BadInputError
from emoedge.core.retry import Backoff
from emoedge.edge.outputs.mqtt_broker import load_paho
from emoedge.edge.outputs.mqtt_tls import configure_tls
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
DB_RETRY = Backoff(first_s=0.5, max_s=15.0)     # writing a batch again after the database failed (a template)
MAX_GROUP_CHARS = 64


def _database_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises: sqlite3's, and psycopg's where the PostgreSQL store is installed."""
    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


def check_share_group(group: str | None) -> str | None:
    """A shared subscription's group name: one topic level of at most ``MAX_GROUP_CHARS`` printable characters
    without ``/ + #`` (MQTT v5 4.8.2); a :class:`BadInputError` saying what is wrong."""
    if group is None:
        return None
    bad = sorted({c for c in group if c in "/+#"})
    if bad or not group.strip() or len(group) > MAX_GROUP_CHARS or not group.isprintable():
        raise BadInputError(f"--share-group {group[:80]!r}: one topic level of 1 to {MAX_GROUP_CHARS} printable "
                            f"characters without / + #" + (f" (has {' '.join(bad)})" if bad else ""))
    return group


class BrokerError(_OwnError):
    """The broker cannot be reached or refused the connection; the message names it."""
    exit_code = EXIT_SOURCE


class FleetSubscriber:
    """Subscribes and stores what arrives; runs in its own threads (``start``) until ``stop``."""

    def __init__(self, target, store: FleetStore, client_id: str = "emoedge-fleet", ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, share_group: str | None = None):
        mqtt = load_paho()
        self.target, self.store, self.client_id = target, store, client_id
        self.share_group = check_share_group(share_group)
        shared = f"$share/{share_group}/" if share_group else ""
        self.topics = (f"{shared}{target.prefix}/+/intervals", f"{target.prefix}/+/status")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  manual_ack=True)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        configure_tls(self.client, target.tls, ca_file, cert_file, key_file)   # BadInputError naming a file
        self.client.reconnect_delay_set(RECONNECT.first_s, RECONNECT.max_s)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "status": 0, "rejected": 0, "failed": 0,
                       "db_retries": 0}
        self.connected = threading.Event()
        self.refused: str | None = None
        self._inbox: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        self._db_errors = _database_errors()
        self._writing = False                     # a batch taken from the inbox and not yet stored
        self._writer = threading.Thread(target=self._write_loop, name="emoedge-fleet-writer", daemon=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("fleet: the broker %s refused the connection: %s", self.target, reason_code)
            return
        client.subscribe([(topic, 1) for topic in self.topics])
        if getattr(flags, "session_present", False):
            # the broker kept this client id's session and its subscriptions: messages flow from now on, queued ones
            # first, and the SUBACK of the subscription renewed above arrives behind them (a worker restarted under a
            # backlog of thousands would otherwise fail its start waiting for it, and be restarted in a loop)
            log.info("fleet: %s resumed its session on %s", self.client_id, self.target)
            self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        refused = [f"{topic}: {code}" for topic, code in zip(self.topics, reason_codes) if code.is_failure]
        if refused:      # e.g. an ACL without read access for this user: said, and start() fails with it
            self.refused = "the broker refused the subscription to " + "; ".join(refused)
            log.error("fleet: %s on %s", self.refused, self.target)
            return
        log.info("fleet: subscribed to %s and %s on %s as %s", *self.topics, self.target, self.client_id)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not self.connected.is_set() and reason_code.is_failure:    # e.g. a listener that wants a certificate
            self.refused = self.refused or f"the connection was closed: {reason_code}"
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
        db, batch, retry = None, [], dataclasses.replace(DB_RETRY)
        try:
            while not (self._closing.is_set() and self._inbox.empty() and not batch):
                batch = batch or self._take()
                self._writing = bool(batch)
                if not batch:
                    continue
                try:
                    if db is None:
                        db = self.store.connect()
                    self._write(db, batch)
                except self._db_errors as exc:
                    db = _close(db)
                    if self._closing.is_set():       # stopping: left unacknowledged, the next session brings them
                        log.error("fleet: %s: %d message(s) not stored at stop (%s); left unacknowledged, the "
                                  "broker sends them again", self.store.path, len(batch), exc)
                        self.counts["failed"] += len(batch)
                        return
                    delay_s = retry.next_delay_s()
                    self.counts["db_retries"] += 1
                    log.error("fleet: %s: %d message(s) not stored (%s); unacknowledged, writing them again in "
                              "%.1f s", self.store.path, len(batch), exc, delay_s)
                    self._closing.wait(delay_s)
                    continue
                batch = []
                retry.reset()
        finally:
            _close(db)

    def _write(self, db, batch: list[tuple]) -> None:
        """One batch in one transaction, then its acknowledgements; a failing database raises (nothing acknowledged)."""
        try:
            kinds = self.store.ingest_many(db, [(topic, payload) for topic, payload, _, _ in batch])
        except self._db_errors:
            raise
        except Exception:   # noqa: BLE001 (a bug: said with its traceback; the thread and the store keep going)
            log.exception("fleet: a batch of %d message(s) could not be stored; storing them one by one", len(batch))
            kinds = [self._one(db, topic, payload) for topic, payload, _, _ in batch]
        for kind in kinds:
            self.counts[kind] += 1
        if not self._closing.is_set():
            for _, _, mid, qos in batch:
                self.client.ack(mid, qos)

    def _one(self, db, topic: str, payload: bytes) -> str:
        try:
            return self.store.ingest(db, topic, payload)
        except Exception:   # noqa: BLE001 (acknowledged all the same: a message that breaks the store must not loop)
            log.exception("fleet: %.120s: message not stored: %r", topic, payload[:120])
            return "failed"

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (``BrokerError`` when the broker cannot be reached or refuses within ``timeout_s``),
        then subscribe and store in the background. Started at the SUBACK, or at the CONNACK when the broker
        resumed this client id's session (its subscriptions are there already)."""
        try:
            self.client.connect(self.target.host, self.target.port, keepalive=30, clean_start=False,
                                properties=_connect_properties())
        except (OSError, ValueError) as exc:
            raise BrokerError(f"fleet: cannot reach the broker {self.target}: {exc}") from exc
        self._writer.start()
        self.client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self.connected.wait(0.05):
            if self.refused or time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"fleet: the broker {self.target} did not accept the store"
                                  + (f": {self.refused}" if self.refused else f" within {timeout_s:g} s"))

    def stop(self, properties=None) -> None:
        """Store what has arrived, disconnect (the session and its queue stay with the broker) and end the threads."""
        self._closing.set()
        self.client.disconnect(properties=properties)
        self.client.loop_stop()
        if self._writer.is_alive():
            self._writer.join()

    def retire(self, quiet_s: float = 2.0, timeout_s: float = 120.0) -> bool:
        """Leave for good (a worker taken out of service): unsubscribe, so the broker deals this worker nothing more;
        store and acknowledge what its session still holds (until nothing has arrived for ``quiet_s``); then end the
        session (expiry 0) and stop. A worker merely stopped keeps its session, and a shared subscription keeps being
        dealt its share. False when messages were still arriving after ``timeout_s`` (the session is kept then)."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client.unsubscribe(list(self.topics))
        deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
        while time.monotonic() < deadline:
            seen = (sum(self.counts.values()), self._inbox.qsize(), self._writing)
            if seen != last:
                last, since = seen, time.monotonic()
            elif time.monotonic() - since >= quiet_s and not (seen[1] or seen[2]):
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
                self.stop(props)
                return True
            time.sleep(0.05)
        log.error("fleet: %s still receiving after %g s; stopped with its session kept", self.client_id, timeout_s)
        self.stop()
        return False


def _close(db) -> None:
    """Close a store connection (None: nothing open); a connection that is already broken is let go quietly."""
    if db is not None:
        try:
            db.close()
        except Exception:   # noqa: BLE001 (closing a dead connection: nothing left to save)
            log.debug("fleet: closing a failed store connection", exc_info=True)


def _connect_properties():
    """CONNECT's v5 properties: a persistent session and a large receive window (see the module's text)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props
