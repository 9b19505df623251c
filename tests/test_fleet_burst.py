"""A burst of intervals reaches the fleet store whole, through a real Mosquitto at its default queue
limit (1,000 messages per client): the store asks the broker for a large receive window (MQTT v5
Receive Maximum), so the broker sends a burst on rather than queueing it for one consumer and
dropping what overflows. The devices count a message sent once the broker has it: a drop there is
an interval lost for good."""

from __future__ import annotations

import json
import threading
import time

from mqtt_broker import Broker, need_mosquitto
from test_fleet import summary

from emoedge.edge.outputs.mqtt import MqttTarget, interval_payload
from emoedge.fleet import FleetStore, FleetSubscriber

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
