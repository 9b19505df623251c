"""`emoedge fleet serve` (emoedge.fleet.subscriber) against a real Mosquitto: what devices publish stored once, bursts,
hostile messages, dead brokers, bad password files; the share group and client certificate arguments checked.
Several workers in one share group: tests/fleet/test_workers.py; mutual TLS and the ACL: tests/deploy/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from fleet_data import HOSTILE, summary
from mqtt_broker import Broker, free_port, need_mosquitto

from emoedge.benchmarks.fleet_sim import _wait_port
from emoedge.core.errors import BadInputError
from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, interval_payload
from emoedge.edge.outputs.records import RunInfo
from emoedge.fleet import BrokerError, FleetStore, FleetSubscriber


def test_fleet_serve_stores_what_devices_publish_once(tmp_path):
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    db = tmp_path / "fleet.sqlite"
    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    serve = subprocess.Popen([sys.executable, "-m", "emoedge", "fleet", "serve", "--mqtt", broker.url, "--db", str(db),
                              "--http-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    try:
        _wait_port(port, 60.0)         # the page starts once the subscription is made (loaded machine: > 2 s)
        for d in ("k1", "k2", "k3"):
            sink = MqttSink(MqttTarget.parse(broker.url), tmp_path / f"{d}.outbox.sqlite", device=d, room="hall",
                            model="fast")
            sink.on_start(RunInfo.new(model="fast"))
            for k in range(15):
                sink.on_interval(summary(d, k))
            sink.close()
        # a device that resends an interval the broker did acknowledge (e.g. its outbox restored from a backup)
        again = MqttSink(MqttTarget.parse(broker.url), tmp_path / "k1-copy.outbox.sqlite", device="k1", room="hall",
                         model="fast")                     # the same payload again (other content: a conflict)
        again.on_start(RunInfo.new(model="fast"))
        again.on_interval(summary("k1", 3))
        again.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(FleetStore(db).rows()) < 45:
            time.sleep(0.1)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        csv_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/intervals.csv", timeout=5).read().decode()
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=20)
        broker.stop()
    assert serve.returncode == 0, err[-2000:]
    s = FleetStore(db).summary()
    assert len(s["intervals"]) == 45 and s["counters"].get("duplicate") == 1
    assert "stored 45 interval(s), dropped 1 duplicate(s)" in out
    assert "3 devices, 45 intervals" in page and len(csv_text.strip().splitlines()) == 46
    assert {v["status"] for v in s["devices"].values()} == {"offline"}   # each said goodbye at close


def test_fleet_serve_with_an_unreadable_password_file_says_so_and_creates_nothing(tmp_path, capsys):
    from emoedge.cli import main

    missing = tmp_path / "nope.txt"
    rc = main(["fleet", "serve", "--mqtt", "mqtt://127.0.0.1:1/x", "--db", str(tmp_path / "f.sqlite"),
               "--password-file", str(missing), "--seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{missing}: cannot read the MQTT password file" in err and "Traceback" not in err
    assert not (tmp_path / "f.sqlite").exists()       # refused before anything was created


DEVICES, PER_DEVICE = 5, 1000          # 5,000 QoS 1 intervals at once


def _device(port: int, dev: str, done: list) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"burst-{dev}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"test/{dev}/intervals", json.dumps(interval_payload(summary(dev, k), dev, "fast", "hall")),
                       qos=1) for k in range(1, PER_DEVICE + 1)]
    for info in infos:
        info.wait_for_publish(60)
    done.append(sum(info.is_published() for info in infos))
    c.loop_stop()
    c.disconnect()


def _wait_stored(sub: FleetSubscriber, n: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sub.counts["stored"] < n:
        time.sleep(0.2)
    return sub.counts["stored"]


def test_a_burst_of_5000_intervals_is_stored_whole_at_mosquittos_default_queue(tmp_path):
    need_mosquitto()
    broker = Broker(tmp_path / "b", max_queued=None).start()
    try:
        store = FleetStore(tmp_path / "fleet.sqlite")
        sub = FleetSubscriber(MqttTarget.parse(broker.url), store, client_id="burst-store")
        sub.start()
        try:
            done: list[int] = []
            threads = [threading.Thread(target=_device, args=(broker.port, f"d{i}", done)) for i in range(DEVICES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sum(done) == DEVICES * PER_DEVICE            # the broker acknowledged every one
            stored = _wait_stored(sub, DEVICES * PER_DEVICE)
        finally:
            sub.stop()
        assert stored == DEVICES * PER_DEVICE, f"{DEVICES * PER_DEVICE - stored} intervals lost in the broker's queue"
        assert len(store.rows()) == DEVICES * PER_DEVICE
        sequence = store.summary()["sequence"]
        assert {d: (s["received"], s["missing"]) for d, s in sequence.items()} == {
            f"d{i}": (PER_DEVICE, 0) for i in range(DEVICES)}
    finally:
        broker.stop()


def test_fleet_serve_against_a_dead_broker_fails_with_exit_3(tmp_path, capsys):
    from emoedge.cli import main

    port = free_port()
    rc = main(["fleet", "serve", "--mqtt", f"mqtt://127.0.0.1:{port}/x", "--db", str(tmp_path / "f.sqlite"),
               "--http-port", "0", "--seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 3 and f"cannot reach the broker mqtt://127.0.0.1:{port}" in err and "Traceback" not in err


def _publish(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic, payload, retain in messages:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def _serve(broker: Broker, db, port: int) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "emoedge", "fleet", "serve", "--mqtt", broker.url, "--db", str(db),
                             "--http-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _publish_intervals(broker: Broker, tmp_path, dev: str, ks) -> None:
    sink = MqttSink(MqttTarget.parse(broker.url), tmp_path / f"{dev}.outbox.sqlite", device=dev, room="hall",
                    model="fast")
    sink.on_start(RunInfo.new(model="fast"))
    for k in ks:
        sink.on_interval(summary(dev, k))
    sink.close()


def _wait_rows(db, n: int, timeout_s: float = 15) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(FleetStore(db).rows()) < n:
        time.sleep(0.1)
    return len(FleetStore(db).rows())


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=30)


def test_fleet_serve_lives_through_hostile_messages_with_a_real_broker(tmp_path):
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    try:
        _hostile_then_restart(broker, tmp_path)
    finally:
        broker.stop()


def _hostile_then_restart(broker: Broker, tmp_path) -> None:
    db, port = tmp_path / "fleet.sqlite", free_port()
    serve = _serve(broker, db, port)
    try:
        _wait_port(port, 60.0)         # the page starts once the subscription is made (loaded machine: > 2 s)
        _publish(broker.port, [("test/evil/intervals", b"null", True)]             # retained: every new subscriber
                 + [(f"test/{name.replace(' ', '-')}/intervals", p, False) for name, p in sorted(HOSTILE.items())])
        _publish_intervals(broker, tmp_path, "k1", range(1, 11))
        assert _wait_rows(db, 10) == 10
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        csv_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/intervals.csv", timeout=5).read().decode()
        assert serve.poll() is None                                              # still serving
    finally:
        out, err = _stop(serve)
    assert serve.returncode == 0, err[-2000:]
    assert f"rejected {len(HOSTILE) + 1}" in out and "Traceback" not in err and "message refused" in err
    assert "1 devices, 10 intervals" in page and len(csv_text.strip().splitlines()) == 11
    # a restart: nothing unacknowledged comes back (only the retained message, refused again), storing goes on
    serve = _serve(broker, db, port)
    try:
        _wait_port(port, 60.0)
        _publish_intervals(broker, tmp_path, "k2", range(1, 6))
        assert _wait_rows(db, 15) == 15
    finally:
        out, err = _stop(serve)
    assert serve.returncode == 0 and "stored 5 interval(s)" in out and "rejected 1," in out, out + err[-2000:]


def _paho() -> None:
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        pytest.skip("paho-mqtt is not installed (pip install -e '.[fleet]')")


@pytest.mark.parametrize("group", ["a/b", "a+", "#", "", " ", "x" * 65, "tab\there"])
def test_a_share_group_that_is_not_one_topic_level_is_refused(tmp_path, group):
    _paho()
    with pytest.raises(BadInputError, match="--share-group .*one topic level"):
        FleetSubscriber(MqttTarget.parse("mqtt://127.0.0.1:1/x"), FleetStore(tmp_path / "f.sqlite"), share_group=group)


def test_a_share_group_subscribes_the_intervals_shared_and_the_statuses_plainly(tmp_path):
    _paho()
    store = FleetStore(tmp_path / "f.sqlite")
    sub = FleetSubscriber(MqttTarget.parse("mqtt://127.0.0.1:1/school"), store, share_group="ingest")
    assert sub.topics == ("$share/ingest/school/+/intervals", "school/+/status")
    assert FleetSubscriber(MqttTarget.parse("mqtt://127.0.0.1:1/school"), store).topics == (
        "school/+/intervals", "school/+/status")


def test_a_client_certificate_without_its_key_or_unreadable_is_refused_naming_it(tmp_path):
    _paho()
    store, target = FleetStore(tmp_path / "f.sqlite"), MqttTarget.parse("mqtts://127.0.0.1:1/x")
    cert = tmp_path / "fleet.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(BadInputError, match="--mqtt-cert-file needs --mqtt-key-file too"):
        FleetSubscriber(target, store, cert_file=str(cert))
    with pytest.raises(BadInputError, match=f"--mqtt-key-file {tmp_path / 'nope.key'}: not found"):
        FleetSubscriber(target, store, cert_file=str(cert), key_file=str(tmp_path / "nope.key"))


class _FlakyStore:
    """A store whose database fails ``failures`` times (a locked file, a PostgreSQL restart), then works."""

    path = "flaky-db"

    def __init__(self, failures: int):
        import sqlite3

        self.failures, self.connects, self.closed, self.error = failures, 0, 0, sqlite3.OperationalError

    def connect(self):
        self.connects += 1
        return self

    def close(self) -> None:
        self.closed += 1

    def ingest_many(self, db, messages):
        if self.failures:
            self.failures -= 1
            raise self.error("database is locked")
        return ["stored"] * len(messages)


def test_a_failing_database_is_retried_on_a_new_connection_and_nothing_is_lost(monkeypatch):
    _paho()
    from emoedge.core.retry import Backoff
    from emoedge.fleet import subscriber

    monkeypatch.setattr(subscriber, "DB_RETRY", Backoff(first_s=0.01, max_s=0.02))
    store = _FlakyStore(failures=3)
    sub = FleetSubscriber(MqttTarget.parse("mqtt://127.0.0.1:1/x"), store)
    acked = []
    monkeypatch.setattr(sub.client, "ack", lambda mid, qos: acked.append(mid))
    for mid in range(1, 6):
        sub._inbox.put(("x/d/intervals", b"{}", mid, 1))
    sub._writer.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sub.counts["stored"] < 5:
        time.sleep(0.01)
    sub._closing.set()
    sub._writer.join(5)
    assert sub.counts["stored"] == 5 and sub.counts["db_retries"] == 3 and sub.counts["failed"] == 0
    assert store.connects == 4 and store.closed == 4 and acked == [1, 2, 3, 4, 5]   # acknowledged once stored


def test_a_database_still_failing_at_stop_leaves_the_batch_unacknowledged(monkeypatch):
    _paho()
    from emoedge.core.retry import Backoff
    from emoedge.fleet import subscriber

    monkeypatch.setattr(subscriber, "DB_RETRY", Backoff(first_s=0.01, max_s=0.02))
    sub = FleetSubscriber(MqttTarget.parse("mqtt://127.0.0.1:1/x"), _FlakyStore(failures=10**9))
    acked = []
    monkeypatch.setattr(sub.client, "ack", lambda mid, qos: acked.append(mid))
    sub._inbox.put(("x/d/intervals", b"{}", 1, 1))
    sub._writer.start()
    time.sleep(0.2)
    sub._closing.set()
    sub._writer.join(5)
    assert not sub._writer.is_alive() and sub.counts["failed"] == 1 and acked == []   # the broker sends it again


class _NoSuback(FleetSubscriber):
    """A store whose SUBACK is late (a worker restarted behind thousands of queued messages reads it last)."""

    def _on_subscribe(self, *args, **kw) -> None:
        pass


def test_a_store_resuming_its_session_starts_without_waiting_for_the_suback(tmp_path):
    """A fresh session waits for its SUBACK (a refused subscription fails the start); a resumed one holds its
    subscriptions already, so it starts at the CONNACK and stores its queue: a restart under a backlog does not fail
    its start (exit 3) and get restarted in a loop."""
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    store = FleetStore(tmp_path / "fleet.sqlite")
    try:
        with pytest.raises(BrokerError, match="within 2 s"):
            _NoSuback(MqttTarget.parse(broker.url), store, client_id="late").start(timeout_s=2.0)
        first = FleetSubscriber(MqttTarget.parse(broker.url), store, client_id="late")
        first.start()
        first.stop()                                         # the session, its subscription kept by the broker
        done: list[int] = []
        _device(broker.port, "q1", done)
        late = _NoSuback(MqttTarget.parse(broker.url), store, client_id="late")
        late.start(timeout_s=2.0)
        try:
            assert _wait_stored(late, PER_DEVICE) == PER_DEVICE == sum(done)
        finally:
            late.stop()
    finally:
        broker.stop()
