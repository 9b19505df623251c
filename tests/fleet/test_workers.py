"""Several fleet ingest workers in one MQTT shared subscription (``FleetSubscriber(share_group=...)``) against a real
Mosquitto, writing one SQLite store: the broker hands each interval to one worker (disjoint parts, each stored once);
a worker killed mid-burst (SIGKILL) and restarted with its client id: nothing lost, nothing twice."""

from __future__ import annotations

import json
import threading
import time

from fleet_data import summary
from fleet_worker import Worker
from mqtt_broker import Broker, need_mosquitto

from emoedge.edge.outputs.mqtt import MqttTarget, interval_payload
from emoedge.fleet import FleetStore, FleetSubscriber

GROUP = "ingest"


def _publish(port: int, dev: str, ks, done: list) -> None:
    """Device ``dev``'s intervals ``ks`` at QoS 1 as fast as the broker takes them, and its retained status."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{dev}")
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"test/{dev}/status", "online", qos=1, retain=True)]
    infos += [c.publish(f"test/{dev}/intervals", json.dumps(interval_payload(summary(dev, k), dev, "fast", "hall")),
                        qos=1) for k in ks]
    for info in infos:
        info.wait_for_publish(60)
    done.append(sum(info.is_published() for info in infos) - 1)
    c.loop_stop()
    c.disconnect()


def _burst(port: int, devices: list[str], ks) -> int:
    done: list[int] = []
    threads = [threading.Thread(target=_publish, args=(port, d, ks, done)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return sum(done)


def _rows(db) -> int:
    with FleetStore(db).connect() as c:
        return c.execute("SELECT COUNT(*) FROM intervals").fetchone()[0]


def _wait_rows(db, n: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _rows(db) < n:
        time.sleep(0.1)
    return _rows(db)


def _settled(db, quiet_s: float = 2.0, timeout_s: float = 30) -> int:
    """The row count once it has not changed for ``quiet_s``."""
    deadline, last, since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        n = _rows(db)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.1)
    return last


def _missing(db) -> dict[str, tuple[int, int]]:
    return {d: (s["received"], s["missing"]) for d, s in FleetStore(db).summary()["sequence"].items()}


def test_two_workers_in_one_share_group_store_disjoint_parts_each_interval_once(tmp_path):
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    db = tmp_path / "fleet.sqlite"
    store = FleetStore(db)
    workers = [FleetSubscriber(MqttTarget.parse(broker.url), store, client_id=f"w{i}", share_group=GROUP)
               for i in (1, 2)]
    try:
        for w in workers:
            w.start()
        devices, per = [f"d{i}" for i in range(4)], 500
        assert _burst(broker.port, devices, range(1, per + 1)) == len(devices) * per
        assert _wait_rows(db, len(devices) * per) == len(devices) * per
        _settled(db, quiet_s=1.0)
    finally:
        for w in workers:
            w.stop()
        broker.stop()
    stored = [w.counts["stored"] for w in workers]
    assert sum(stored) == len(devices) * per and min(stored) > 0, stored       # split, none stored twice
    assert [w.counts["duplicate"] + w.counts["conflict"] for w in workers] == [0, 0]   # none delivered twice
    assert [w.counts["status"] for w in workers] == [len(devices)] * 2           # statuses: every worker
    assert _missing(db) == {d: (per, 0) for d in devices}


def test_a_worker_killed_mid_burst_and_restarted_loses_nothing_and_stores_nothing_twice(tmp_path):
    """Mosquitto 2.0 deals the shared subscription's messages round-robin over the group's sessions, connected or
    not: while worker B is dead its share waits in B's session (the live worker A does not get it); B's restart with
    its client id brings it, with what B had received but not acknowledged when it died."""
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    db = tmp_path / "fleet.sqlite"
    a = FleetSubscriber(MqttTarget.parse(broker.url), FleetStore(db), client_id="worker-a", share_group=GROUP)
    b = None
    try:
        a.start()
        b = Worker(broker.url, db, "worker-b", GROUP)
        devices, first, second = ["k1", "k2"], range(1, 1501), range(1501, 2001)
        total = len(devices) * (len(first) + len(second))
        publishing = threading.Thread(target=_burst, args=(broker.port, devices, first))
        publishing.start()
        _wait_rows(db, 300)
        b.kill()                                       # SIGKILL mid-burst: no DISCONNECT, acknowledgements cut
        publishing.join(120)
        assert _burst(broker.port, devices, second) == len(devices) * len(second)     # while B is dead
        while_dead = _settled(db)
        assert while_dead <= total - len(second), "B's share went to A: update deploy/mosquitto/README.md"
        b = Worker(broker.url, db, "worker-b", GROUP)  # the same client id: its session, its queue
        assert _wait_rows(db, total) == total
        _settled(db, quiet_s=1.0)
        b_counts = b.stop()
        b = None
    finally:
        if b is not None:
            b.kill()
        a.stop()
        broker.stop()
    assert _rows(db) == total and _missing(db) == {d: (len(first) + len(second), 0) for d in devices}
    assert a.counts["duplicate"] == 0 and a.counts["conflict"] == b_counts["conflict"] == 0
    assert b_counts["stored"] >= total - while_dead and b_counts["failed"] == 0, b_counts


def _started_pair(tmp_path) -> tuple[Broker, object, FleetSubscriber, FleetSubscriber]:
    """A Mosquitto and two started workers w1 and w2 in the share group, storing into one SQLite store."""
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    db = tmp_path / "fleet.sqlite"
    w1, w2 = (FleetSubscriber(MqttTarget.parse(broker.url), FleetStore(db), client_id=f"w{i}", share_group=GROUP)
              for i in (1, 2))
    try:
        w1.start()
        w2.start()
    except BaseException:
        broker.stop()
        raise
    return broker, db, w1, w2


def test_a_retired_worker_leaves_the_group_and_the_others_take_all_of_it(tmp_path):
    """retire(): unsubscribed, what its session held stored, the session ended; later intervals all go to the
    remaining worker (a worker merely stopped would keep being dealt its share, queued for nobody)."""
    broker, db, w1, w2 = _started_pair(tmp_path)
    try:
        assert _burst(broker.port, ["k1"], range(1, 401)) == 400
        assert _wait_rows(db, 400) == 400
        before = w1.counts["stored"]
        assert w2.retire(quiet_s=1.0) is True and 0 < before < 400
        assert _burst(broker.port, ["k1"], range(401, 801)) == 400
        assert _wait_rows(db, 800) == 800
    finally:
        w1.stop()
        broker.stop()
    assert w1.counts["stored"] == before + 400 and w1.counts["stored"] + w2.counts["stored"] == 800
    assert _missing(db) == {"k1": (800, 0)}


def test_fleet_serve_retire_empties_a_stopped_workers_session_and_ends_it(tmp_path, capsys):
    """``emoedge fleet serve --retire --client-id W``: a worker stopped with its share of a burst queued in its session
    comes back only to store that share and leave; the intervals after it all go to the worker that stays."""
    from emoedge.cli import main

    broker, db, w1, w2 = _started_pair(tmp_path)
    try:
        w2.stop()                                    # stopped, not retired: the broker keeps dealing it turns
        assert _burst(broker.port, ["r1"], range(1, 201)) == 200
        assert 0 < _wait_rows(db, 200, timeout_s=5) < 200          # w2's share waits in its session
        assert main(["fleet", "serve", "--mqtt", broker.url, "--db", str(db), "--share-group", GROUP,
                     "--client-id", "w2", "--retire", "--http-port", "0"]) == 0
        assert "w2 retired" in capsys.readouterr().out and _rows(db) == 200
        assert _burst(broker.port, ["r1"], range(201, 401)) == 200
        assert _wait_rows(db, 400) == 400
    finally:
        w1.stop()
        broker.stop()
    assert _missing(db) == {"r1": (400, 0)}
