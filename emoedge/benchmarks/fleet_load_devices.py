"""Many simulated devices in one process, for ``emoedge bench fleet --simulate N``: each device is its own
MQTT connection (its own client id ``emoedge-<device>``, its own retained ``online`` status and ``offline``
last will, as :class:`emoedge.edge.outputs.mqtt.MqttSink` does), publishing interval summaries built by the
device's own :func:`~emoedge.edge.outputs.mqtt.interval_payload` (QoS 1, ``<run>-<seq>`` interval ids) at a
fixed rate; hundreds of connections share one event loop (paho's external-loop API: ``loop_read``,
``loop_write`` and ``loop_misc`` driven by a :mod:`selectors` poll, the sockets registered through paho's
``on_socket_*`` callbacks), so a thousand devices fit in a few processes on two cores.

What a device publishes is recorded (interval id -> the wall clock when ``publish`` was called) in a side
file, read by the bench to compute the end-to-end lag from the store's ``received_unix_ns``. A publish is
counted as ``acknowledged`` when the broker's PUBACK arrives. The parent drives a :class:`DeviceFleet` in a
child process through :func:`serve` (commands over a pipe: ``run``, ``burst``, ``close``)."""

from __future__ import annotations

import contextlib
import heapq
import json
import random
import selectors
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from emoedge.edge.outputs.mqtt import MqttTarget, interval_payload
from emoedge.edge.outputs.mqtt_broker import load_paho
from emoedge.edge.outputs.records import IntervalSummary

LABELS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
MAX_IN_FLIGHT = 20              # as the device's sink (MqttSink max_in_flight)
MISC_EVERY_S = 1.0              # paho's keepalive and timeout bookkeeping per client


@dataclass
class SimDevice:
    """One simulated box: its client, run id, next sequence number and publishes waiting for a PUBACK."""
    name: str
    room: str
    client: object
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0
    connected: bool = False
    in_flight: set = field(default_factory=set)


def palette(rng: random.Random, n: int = 64) -> list[dict[str, float]]:
    """``n`` plausible label mixes (neutral-heavy, some uncertain), each summing to 1: drawn once, then each
    interval takes one (cheaper than a fresh mix per interval; the store sees realistic variety)."""
    names = LABELS + ("uncertain",)
    out = []
    for _ in range(n):
        weights = [rng.random() * (6.0 if k == "neutral" else 1.0) for k in LABELS] + [rng.random() * 0.5]
        total = sum(weights)
        out.append({k: round(w / total, 4) for k, w in zip(names, weights)})
    return out


PALETTE = palette(random.Random(0))


def make_payload(dev: SimDevice, model: str, interval_s: float, rng: random.Random, now_ns: int) -> tuple[str, bytes]:
    """The next interval of ``dev`` (its sequence advanced), as the device would publish it: (id, JSON)."""
    dev.seq += 1
    share, observations = PALETTE[rng.randrange(len(PALETTE))], rng.randint(5, 60)
    frames = max(1, int(round(15 * interval_s)))
    s = IntervalSummary(f"{dev.run_id}-{dev.seq:06d}", dev.run_id, now_ns - int(interval_s * 1e9), now_ns,
                        interval_s, frames, rng.randint(1, 8), observations, share, round(rng.uniform(0.5, 0.95), 4))
    return s.interval_id, json.dumps(interval_payload(s, dev.name, model, dev.room)).encode()


class DeviceFleet:
    """``names`` devices on one broker, one event loop (see the module's text)."""

    def __init__(self, names: list[str], mqtt_url: str, rate_hz: float = 1.0, rooms: int = 10, seed: int = 0,
                 model: str = "ferplus7"):
        self.mqtt = load_paho()
        self.target = MqttTarget.parse(mqtt_url)
        self.rate_hz, self.model = rate_hz, model
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self.devices = [self._device(n, f"room-{k % rooms + 1:02d}") for k, n in enumerate(names)]
        self.published: list[tuple[str, int]] = []      # (interval id, publish wall clock ns), in order
        self.publishes = 0                               # every publish, including those already written out
        self.acknowledged = 0
        self.disconnects = 0

    def _device(self, name: str, room: str) -> SimDevice:
        c = self.mqtt.Client(self.mqtt.CallbackAPIVersion.VERSION2, client_id=f"emoedge-{name}", clean_session=True)
        dev = SimDevice(name, room, c)
        c.user_data_set(dev)
        c.will_set(self.target.topic(name, "status"), "offline", qos=1, retain=True)
        c.max_inflight_messages_set(MAX_IN_FLIGHT)
        c.on_socket_open = lambda client, ud, sock: self.sel.register(sock, selectors.EVENT_READ, client)
        c.on_socket_close = lambda client, ud, sock: self._unregister(sock)
        c.on_socket_register_write = lambda client, ud, sock: self.sel.modify(
            sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        c.on_socket_unregister_write = lambda client, ud, sock: self._modify_read(sock, client)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        return dev

    def _unregister(self, sock) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)

    def _modify_read(self, sock, client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ, client)

    def _on_connect(self, client, dev: SimDevice, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            raise RuntimeError(f"the broker refused device {dev.name}: {reason_code}")
        dev.connected = True
        client.publish(self.target.topic(dev.name, "status"), "online", qos=1, retain=True)

    def _on_disconnect(self, client, dev: SimDevice, flags, reason_code, properties=None) -> None:
        if dev.connected:
            self.disconnects += 1
        dev.connected = False

    def _on_publish(self, client, dev: SimDevice, mid, reason_code, properties=None) -> None:
        if mid in dev.in_flight:
            dev.in_flight.discard(mid)
            self.acknowledged += 1

    # -- the event loop -------------------------------------------------------------------------------------
    def _poll(self, timeout_s: float) -> None:
        for key, events in self.sel.select(max(0.0, timeout_s)):
            client = key.data
            if events & selectors.EVENT_READ:
                client.loop_read(max_packets=20)
            if events & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()

    def _misc(self) -> None:
        for dev in self.devices:
            dev.client.loop_misc()
            if not dev.connected and dev.client.socket() is None:
                with contextlib.suppress(OSError):
                    dev.client.reconnect()      # paho sends the unacknowledged QoS 1 messages again

    def _loop_until(self, done, deadline: float) -> None:
        next_misc = time.monotonic() + MISC_EVERY_S
        while not done() and time.monotonic() < deadline:
            self._poll(min(0.05, max(0.0, next_misc - time.monotonic())))
            if time.monotonic() >= next_misc:
                self._misc()
                next_misc = time.monotonic() + MISC_EVERY_S

    def connect(self, timeout_s: float = 60.0) -> int:
        """Connect every device (online status published); the number connected."""
        for dev in self.devices:
            dev.client.connect(self.target.host, self.target.port, keepalive=60)
            self._poll(0)
        self._loop_until(lambda: all(d.connected for d in self.devices), time.monotonic() + timeout_s)
        return sum(d.connected for d in self.devices)

    def _publish(self, dev: SimDevice) -> None:
        now = time.time_ns()
        interval_id, body = make_payload(dev, self.model, 1.0 / self.rate_hz, self.rng, now)
        info = dev.client.publish(self.target.topic(dev.name, "intervals"), body, qos=1)
        dev.in_flight.add(info.mid)
        self.published.append((interval_id, now))
        self.publishes += 1

    def _settled(self) -> bool:
        return all(not d.in_flight for d in self.devices)

    def run(self, seconds: float, settle_s: float = 60.0) -> None:
        """Each device publishes one interval every 1/rate_hz s for ``seconds`` (staggered evenly), then
        the loop runs until every publish is acknowledged (at most ``settle_s`` more)."""
        period = 1.0 / self.rate_hz
        t0 = time.monotonic()
        n = len(self.devices)
        due = [(t0 + period * (k + 0.5) / n, k) for k in range(n)]
        heapq.heapify(due)
        next_misc = t0 + MISC_EVERY_S
        end = t0 + seconds
        while due and due[0][0] < end:
            now = time.monotonic()
            while due and due[0][0] <= now:
                t, k = heapq.heappop(due)
                self._publish(self.devices[k])
                heapq.heappush(due, (t + period, k))
            wait = min((due[0][0] if due else end), next_misc) - time.monotonic()
            self._poll(min(0.05, max(0.0, wait)))
            if time.monotonic() >= next_misc:
                self._misc()
                next_misc = time.monotonic() + MISC_EVERY_S
        self._loop_until(self._settled, time.monotonic() + settle_s)

    def burst(self, count: int, settle_s: float = 300.0) -> None:
        """``count`` intervals at once, round robin over the devices (what they held through an outage),
        then the loop until every one is acknowledged."""
        for k in range(count):
            self._publish(self.devices[k % len(self.devices)])
            if k % 50 == 0:
                self._poll(0)
        self._loop_until(self._settled, time.monotonic() + settle_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Each device says ``offline`` (retained) and disconnects, as a device stopping cleanly does."""
        for dev in self.devices:
            if dev.connected:
                dev.client.publish(self.target.topic(dev.name, "status"), "offline", qos=1, retain=True)
        self._loop_until(lambda: all(not d.client.want_write() for d in self.devices), time.monotonic() + timeout_s)
        for dev in self.devices:
            dev.connected = False
            dev.client.disconnect()
            if dev.client.socket() is not None:
                dev.client.loop_write()
        self.sel.close()

    def stats(self) -> dict:
        return {"devices": len(self.devices), "connected": sum(d.connected for d in self.devices),
                "published": self.publishes, "acknowledged": self.acknowledged,
                "unacknowledged": sum(len(d.in_flight) for d in self.devices), "disconnects": self.disconnects}


def write_side_table(rows: list[tuple[str, int]], path: Path) -> None:
    """``interval_id,publish_unix_ns`` lines, appended."""
    with open(path, "a") as fh:
        fh.writelines(f"{i},{t}\n" for i, t in rows)


def read_side_table(paths: list[Path]) -> dict[str, int]:
    """interval id -> its first publish time, over every side file."""
    out: dict[str, int] = {}
    for p in paths:
        if not Path(p).is_file():
            continue
        for line in Path(p).read_text().splitlines():
            i, _, t = line.partition(",")
            out.setdefault(i, int(t))
    return out


def serve(conn, names: list[str], mqtt_url: str, rate_hz: float, rooms: int, seed: int, side_file: str) -> None:
    """A child process's main: a :class:`DeviceFleet` driven by commands from ``conn`` (a pipe):
    ``("connect",)``, ``("run", seconds)``, ``("burst", count)``, ``("close",)``; each answered with the
    fleet's :meth:`~DeviceFleet.stats` (or ``{"error": text}``) after the command's publishes are appended to
    ``<side_file>.<command>``."""
    fleet = DeviceFleet(names, mqtt_url, rate_hz, rooms, seed)
    while True:
        cmd = conn.recv()
        try:
            if cmd[0] == "connect":
                fleet.connect()
            elif cmd[0] == "run":
                fleet.run(cmd[1])
            elif cmd[0] == "burst":
                fleet.burst(cmd[1])
            elif cmd[0] == "close":
                fleet.close()
            if fleet.published:
                write_side_table(fleet.published, Path(f"{side_file}.{cmd[0]}"))
            fleet.published = []
            conn.send(fleet.stats())
        except Exception as exc:   # noqa: BLE001 (said to the parent, which reports it and stops the bench)
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
            return
        if cmd[0] == "close":
            return
