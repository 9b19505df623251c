"""The fleet store under hostile MQTT messages (issue 28): every one refused with a logged one-line
reason and counted, nothing invalid stored, the store keeps storing, and the page, /summary.json,
/intervals.csv, `fleet page` and `fleet export` keep working; a device may only publish as itself;
an id seen again with other content is a conflict; gaps in each device's sequence are counted;
`fleet serve` against a dead broker fails with exit 3. A property test (hypothesis) feeds random
JSON and random types to ingest. End to end with a real Mosquitto: the serving process lives on."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_broker import Broker, free_port, need_mosquitto
from test_fleet import summary

from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, interval_payload
from emoedge.edge.outputs.records import RunInfo
from emoedge.fleet import FleetStore, render_page
from emoedge.fleet.web import summary_json

KINDS = {"stored", "duplicate", "conflict", "status", "rejected"}


def good(dev: str = "d1", k: int = 1, **change) -> dict:
    return {**interval_payload(summary(dev, k), dev, "fast", "room-a"), **change}


def raw(obj) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


HOSTILE = {
    "null": b"null", "number": b"42", "string": b'"hello"', "list": b"[1, 2]", "not json": b"{not json",
    "not utf-8": b'{"a": "\xff\xfe"}', "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "oversized": raw(good(room="r" * 100_000)),
    "start NaN": raw(good()).replace(b'"start_unix_ns": 1790000060000000000', b'"start_unix_ns": NaN'),
    "start Infinity": raw(good()).replace(b'"start_unix_ns": 1790000060000000000', b'"start_unix_ns": Infinity'),
    "start 1e30": raw(good(start_unix_ns=1e30)), "start abc": raw(good(start_unix_ns="abc")),
    "start negative": raw(good(start_unix_ns=-5)), "start bool": raw(good(start_unix_ns=True)),
    "end before start": raw(good(end_unix_ns=5)),
    "frames object": raw(good(frames={"a": 1})), "faces_seen many": raw(good(faces_seen="many")),
    "share list": raw(good(share=[0.5, 0.5])), "share empty": raw(good(share={})),
    "share NaN": raw(good()).replace(b'"happy": 0.5', b'"happy": NaN'), "share 7": raw(good(share={"happy": 7})),
    "device null": raw(good(device=None)), "device list": raw(good(device=["d1"])),
    "lone surrogate": raw(good()).replace(b'"room": "room-a"', b'"room": "\\ud800"'),
    "interval id missing": raw({k: v for k, v in good().items() if k != "interval_id"}),
    "interval id huge": raw(good(interval_id="x" * 5000)), "mean_confidence text": raw(good(mean_confidence="hi")),
}


def everything_works(store: FleetStore, tmp_path) -> None:
    """The page, /summary.json (strict JSON), the CSV and the CLI's `fleet page` / `fleet export`."""
    from emoedge.cli import main

    s = store.summary()
    assert "<h1>emoedge fleet:" in render_page(s)
    json.loads(summary_json(store), parse_constant=lambda c: pytest.fail(f"{c} in /summary.json"))
    assert main(["fleet", "page", "--db", str(store.path), "--out", str(tmp_path / "p.html")]) == 0
    assert main(["fleet", "export", "--db", str(store.path), "--csv", str(tmp_path / "f.csv")]) == 0
    assert len((tmp_path / "f.csv").read_text().splitlines()) == len(s["intervals"]) + 1


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_message_is_refused_said_counted_and_the_store_keeps_storing(name, tmp_path, caplog):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    caplog.set_level(logging.WARNING, logger="emoedge.fleet")
    assert store.ingest(db, "s/d1/intervals", HOSTILE[name]) == "rejected"
    said = [r.getMessage() for r in caplog.records if "message refused" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and len(said[0]) < 600, said
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "stored"
    db.close()
    s = store.summary()
    assert s["counters"] == {"rejected": 1, "stored": 1} and len(s["intervals"]) == 1
    assert list(s["devices"]) == ["d1"]
    everything_works(store, tmp_path)


def test_a_device_may_publish_only_as_itself(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    assert store.ingest(db, "s/d2/intervals", raw(good("d1"))) == "rejected"       # d2's credentials, d1's name
    assert store.ingest(db, "s/d1/intervals", raw(good("d1"))) == "stored"
    assert store.ingest(db, "s/" + "x" * 300 + "/status", b"online") == "rejected"
    assert store.ingest(db, "s/d1/status", b"<script>") == "rejected"
    db.close()
    assert [r["device"] for r in store.rows()] == ["d1"] and list(store.summary()["devices"]) == ["d1"]


def test_the_same_id_with_other_content_is_a_conflict_not_a_duplicate(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "stored"
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "duplicate"
    assert store.ingest(db, "s/d1/intervals", raw(good(frames=1))) == "conflict"
    db.close()
    s = store.summary()
    assert s["counters"] == {"stored": 1, "duplicate": 1, "conflict": 1} and s["intervals"][0]["frames"] == 900
    assert "1 conflicts" in render_page(s)


def test_gaps_in_each_devices_sequence_are_counted_and_shown(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    for k in (1, 2, 4, 7):                                           # 3, 5 and 6 never arrived
        store.ingest(db, "s/d1/intervals", raw(good("d1", k)))
    for k in (1, 2, 3):
        store.ingest(db, "s/d2/intervals", raw(good("d2", k)))
    assert store.ingest_many(db, [("s/d3/intervals", raw(good("d3", k))) for k in (2, 3)]) == ["stored"] * 2
    db.close()
    seq = json.loads(summary_json(store))["sequence"]
    assert seq["d1"] == {"runs": 1, "received": 4, "missing": 3}
    assert seq["d2"]["missing"] == 0 and seq["d3"]["missing"] == 1
    page = render_page(store.summary())
    assert ">4 missing<" in page
    assert page.split('data-device="d1"')[1].split("</tr>")[0].count('<td class="off">3</td>') == 1


def test_a_store_written_before_the_checks_still_serves(tmp_path):
    """Rows an older version stored (share as a list, faces_seen "many", device null, Infinity) are left
    out of the page and the CSV instead of breaking them; /summary.json stays strict JSON."""
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    store.ingest(db, "s/d1/intervals", raw(good()))
    cols = "interval_id, device, start_utc, end_utc, start_unix_ns, end_unix_ns, faces_seen, duration_s, share_json, " \
           "received_unix_ns"
    for i, (dev, faces, dur, share) in enumerate([("d1", 1, 1.0, "[0.5]"), ("d1", "many", 1.0, '{"happy": 1}'),
                                                  (None, 1, 1.0, '{"happy": 1}'), ("d1", 1, 1.0, '{"happy": NaN}')]):
        db.execute(f"INSERT INTO intervals ({cols}) VALUES (?, ?, 'a', 'b', 1, 2, ?, ?, ?, 0)",
                   (f"old-{i}", dev or "", faces, dur, share))
    db.execute(f"INSERT INTO intervals ({cols}) VALUES ('old-inf', 'd1', 'a', 'b', 1, 2, 1, 9e999, '{{}}', 0)")
    db.commit()
    db.close()
    assert [r["interval_id"] for r in store.rows()] == [good()["interval_id"]]
    everything_works(store, tmp_path)


# -- property: random JSON and random types ------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELDS = sorted(good())


@st.composite
def messages(draw) -> bytes:
    kind = draw(st.sampled_from(["any json", "a field changed", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "any json":
        return json.dumps(draw(JSON)).encode()
    m = good()
    for key in draw(st.lists(st.sampled_from(FIELDS + ["extra"]), min_size=1, max_size=3)):
        m[key] = draw(JSON)
    return json.dumps(m).encode()                                      # NaN / Infinity included (json.dumps allows)


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    """One store for every example: what hostile messages leave behind accumulates."""
    store = FleetStore(tmp_path_factory.mktemp("p") / "fleet.sqlite")
    db = store.connect()
    yield store, db, itertools.count()
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(messages(), min_size=1, max_size=5))
def test_property_random_messages_never_stop_the_store(payloads, one_store):
    store, db, ids = one_store
    mine = [f"ok-{next(ids)}" for _ in payloads]
    batch = [m for p, i in zip(payloads, mine) for m in (p, raw(good(interval_id=i)))]   # one valid after each
    kinds = store.ingest_many(db, [("s/d1/intervals", m) for m in batch])               # one commit per example
    assert set(kinds) <= KINDS and kinds[1::2] == ["stored"] * len(mine)
    found = db.execute(f"SELECT COUNT(*) FROM intervals WHERE interval_id IN ({', '.join('?' * len(mine))})",
                       mine).fetchone()[0]
    assert found == len(mine)


def test_property_store_serves_after_the_random_messages(one_store, tmp_path):
    store, db, ids = one_store
    s = store.summary()
    assert len(s["intervals"]) >= next(ids) and s["counters"]["stored"] >= len(s["intervals"])
    everything_works(store, tmp_path)


# -- end to end ----------------------------------------------------------------------------------
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
        time.sleep(2.0)
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
        time.sleep(2.0)
        _publish_intervals(broker, tmp_path, "k2", range(1, 6))
        assert _wait_rows(db, 15) == 15
    finally:
        out, err = _stop(serve)
    assert serve.returncode == 0 and "stored 5 interval(s)" in out and "rejected 1," in out, out + err[-2000:]
