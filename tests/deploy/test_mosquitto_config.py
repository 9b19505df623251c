"""deploy/mosquitto/ as shipped, against a real Mosquitto: mosquitto.conf (only its port, paths and log swapped for the
test's), emoedge.acl unchanged, certificates made by pki.sh. A box with its certificate publishes its own topics (the
device's own MqttSink, with Home Assistant discovery) and the fleet stores them; a client without a certificate from
the district's CA, or with a revoked one, is refused; the ACL drops what a box publishes under another box's id and
refuses a worker it does not name; a box cannot take a worker's client id."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fleet_data import summary
from mqtt_broker import Broker, Subscriber, free_port, need_mosquitto
from mqtt_pki import ThrowawayCA, need_openssl

from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, interval_payload
from emoedge.edge.outputs.records import RunInfo
from emoedge.fleet import BrokerError, FleetStore, FleetSubscriber

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CLIENTS = ("k1", "k2", "emoedge-fleet-1", "emoedge-fleet-9", "homeassistant")


def pki(folder: Path, *revoke: str) -> Path:
    """The district's certificates as README.md makes them: pki.sh ca, server 127.0.0.1, a client each."""
    need_openssl()
    steps = [["ca"], ["server", "127.0.0.1"]] + [["client", c] for c in CLIENTS] + [["revoke", c] for c in revoke]
    for step in steps:
        done = subprocess.run(["sh", str(DEPLOY / "pki.sh"), step[0], str(folder), *step[1:]], capture_output=True,
                              text=True)
        assert done.returncode == 0, f"pki.sh {' '.join(step)}: {done.stderr}"
    return folder


def render(folder: Path, port: int, certs: Path, crl: bool = False) -> str:
    """deploy/mosquitto/mosquitto.conf with the test's port (on 127.0.0.1), certificates, store and log."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    swaps = {"listener 8883\n": f"listener {port} 127.0.0.1\n", "/etc/mosquitto/certs/": f"{certs}/",
             "acl_file /etc/mosquitto/emoedge.acl": f"acl_file {DEPLOY / 'emoedge.acl'}",
             "persistence_location /var/lib/mosquitto/": f"persistence_location {folder}/",
             "log_dest syslog": f"log_dest file {folder / 'broker.log'}"}
    for old, new in swaps.items():
        assert old in text, f"deploy/mosquitto/mosquitto.conf has no {old!r} any more: update this test"
        text = text.replace(old, new)
    if crl:
        text = text.replace("#crlfile ", "crlfile ")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        text += "user root\n"              # else mosquitto drops to user 'mosquitto', who cannot write here
    return text


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return pki(tmp_path_factory.mktemp("pki"))


def _broker(folder: Path, certs: Path, crl: bool = False) -> Broker:
    need_mosquitto()
    port = free_port()
    return Broker.from_config(folder, render(folder, port, certs, crl), port).start()


def _tls(certs: Path, name: str | None) -> dict:
    return {"ca_file": str(certs / "ca.pem"), "cert_file": str(certs / f"{name}.pem") if name else None,
            "key_file": str(certs / f"{name}.key") if name else None}


def _worker(broker: Broker, certs: Path, db: Path, name: str | None = "emoedge-fleet-1", group: str = "ingest",
            **tls) -> FleetSubscriber:
    return FleetSubscriber(MqttTarget.parse(f"mqtts://127.0.0.1:{broker.port}/emoedge"), FleetStore(db),
                           client_id=name or "nobody", share_group=group, **{**_tls(certs, name), **tls})


def _box_publishes(broker: Broker, certs: Path, tmp_path: Path) -> None:
    """k1's own MqttSink: its status, Home Assistant discovery config and 5 intervals, all allowed."""
    sink = MqttSink(MqttTarget.parse(f"mqtts://127.0.0.1:{broker.port}/emoedge"), tmp_path / "k1.outbox.sqlite",
                    device="k1", room="hall", model="fast", ha_prefix="homeassistant", labels=["happy", "neutral"],
                    **_tls(certs, "k1"))
    sink.on_start(RunInfo.new(model="fast"))
    for k in range(1, 6):
        sink.on_interval(summary("k1", k))
    sink.close()
    assert sink.published == 5, sink.problems


def _forge(port: int, certs: Path) -> bool:
    """k1 (its own certificate) under k2's id, then one interval of its own as a marker; it asks for a fleet
    worker's client id as well. True when the broker kept the worker's session (k1 got its CN as client id)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emoedge-fleet-1", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "k1.pem"), keyfile=str(certs / "k1.key"))
    c.connect("127.0.0.1", port)
    c.loop_start()
    forged = json.dumps(interval_payload(summary("k2", 1), "k2", "fast", "hall"))
    for topic, payload in [("emoedge/k2/intervals", forged), ("emoedge/k2/status", "online"),
                           ("homeassistant/device/emoedge_k2/config", "{}"),
                           ("emoedge/k1/intervals", json.dumps(interval_payload(summary("k1", 6), "k1", "fast")))]:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()
    return True


def _wait(check, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        time.sleep(0.1)
    return check()


def test_a_box_publishes_its_own_topics_only_and_the_fleet_stores_them(tmp_path, certs):
    broker = _broker(tmp_path / "b", certs)
    db = tmp_path / "fleet.sqlite"
    worker, ha = _worker(broker, certs, db), None
    try:
        worker.start()
        ha = Subscriber(broker.port, "homeassistant/#", client_id="homeassistant", ca_file=certs / "ca.pem",
                        cert=(certs / "homeassistant.pem", certs / "homeassistant.key"))
        _box_publishes(broker, certs, tmp_path)
        _forge(broker.port, certs)
        assert _wait(lambda: len(FleetStore(db).rows()) >= 6)
        time.sleep(0.5)
        still_connected = worker.client.is_connected()
    finally:
        worker.stop()
        if ha:
            ha.close()
        broker.stop()
    rows = FleetStore(db).rows()
    assert sorted(r["interval_id"] for r in rows) == [f"k1-run-{k:05d}" for k in range(1, 7)]
    devices = FleetStore(db).summary()["devices"]
    assert set(devices) == {"k1"} and worker.counts["rejected"] == 0       # k2's forged interval never arrived
    configs = {t for t, _, _ in ha.messages}
    assert "homeassistant/device/emoedge_k1/config" in configs and not any("k2" in t for t in configs)
    assert still_connected, "a box took the fleet worker's client id (use_username_as_clientid)"


def _refused(broker: Broker, certs: Path, db: Path, name: str | None, **tls) -> str:
    sub = _worker(broker, certs, db, name, **tls)
    with pytest.raises(BrokerError) as err:
        sub.start(timeout_s=5)
    return str(err.value)


def test_clients_without_a_certificate_of_the_district_are_refused(tmp_path, certs):
    other = ThrowawayCA(tmp_path / "other-ca")
    cert, key = other.client_cert("emoedge-fleet-1")          # the right name, the wrong CA
    broker = _broker(tmp_path / "b", certs)
    db = tmp_path / "fleet.sqlite"
    try:
        assert "did not accept the store" in _refused(broker, certs, db, None)          # no certificate
        assert "did not accept the store" in _refused(broker, certs, db, "k1", cert_file=str(cert),
                                                      key_file=str(key))
        refused: list = []
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain")     # no TLS at all
        plain.on_connect = lambda client, userdata, flags, rc, props=None: refused.append(str(rc))
        plain.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and plain.loop(timeout=0.2) == mqtt.MQTT_ERR_SUCCESS:
            pass
        assert refused == [] and not plain.is_connected()          # the TLS listener hung up, no CONNACK
    finally:
        broker.stop()
    assert "New client connected" not in (tmp_path / "b" / "broker.log").read_text()


def _client(port: int, certs: Path, name: str, topics: list[str]) -> tuple[mqtt.Client, list[str]]:
    got: list[str] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / f"{name}.pem"), keyfile=str(certs / f"{name}.key"))
    c.on_message = lambda client, userdata, msg: got.append(msg.topic)
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic in topics:
        c.subscribe(topic, qos=1)[1]
    time.sleep(0.5)
    return c, got


def test_the_share_group_is_a_secret_a_member_without_read_access_loses_its_turns(tmp_path, certs):
    """Mosquitto 2.0's ACL file does not check subscriptions (every SUBACK grants) but each delivery: a client that
    may not read the intervals still joins a share group and takes its turn, and the broker drops that turn. A box
    that guesses the group name would make the fleet lose intervals, so the group name is a secret (README)."""
    broker = _broker(tmp_path / "b", certs)
    secret, db = "ingest-5c1f0d2a9e7b4c38", tmp_path / "fleet.sqlite"
    worker = _worker(broker, certs, db, group=secret)
    clients = []
    try:
        worker.start()
        clients.append(_client(broker.port, certs, "k2", ["emoedge/#", "$share/ingest/emoedge/+/intervals"]))
        _box_publishes(broker, certs, tmp_path)                     # 5 intervals: the guessed group changes nothing
        assert _wait(lambda: len(FleetStore(db).rows()) == 5)
        clients.append(_client(broker.port, certs, "emoedge-fleet-9", [f"$share/{secret}/emoedge/+/intervals"]))
        c, _ = _client(broker.port, certs, "k1", [])
        for k in range(6, 16):                                      # 10 more with a member the ACL does not name
            c.publish("emoedge/k1/intervals", json.dumps(interval_payload(summary("k1", k), "k1", "fast")),
                      qos=1).wait_for_publish(5)
        clients.append((c, []))
        time.sleep(2.0)
    finally:
        for c, _ in clients:
            c.loop_stop()
            c.disconnect()
        worker.stop()
        broker.stop()
    assert [got for _, got in clients[:1]] == [[]]                  # the box read nothing of anyone's
    assert len(FleetStore(db).rows()) == 5 + 5, "Mosquitto now skips a member without read access: update README"


def test_a_revoked_box_is_refused_once_the_crl_is_in_place(tmp_path):
    certs = pki(tmp_path / "pki", "k2")
    assert (certs / "crl.pem").is_file() and not (certs / "k2.pem").exists()
    broker = _broker(tmp_path / "b", certs, crl=True)
    try:
        ok = _worker(broker, certs, tmp_path / "f.sqlite")
        ok.start(timeout_s=5)
        ok.stop()
        revoked = _tls(certs, "k1") | {"cert_file": str(certs / "k2.revoked.pem"), "key_file": str(certs / "k2.key")}
        assert "did not accept the store" in _refused(broker, certs, tmp_path / "f.sqlite", "k2", **revoked)
    finally:
        broker.stop()
