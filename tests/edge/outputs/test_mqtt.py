"""Interval summaries over MQTT with store-and-forward (issue 19), against a real Mosquitto on
127.0.0.1 started by each test: all delivered with the broker up; the broker down at the start and
up later; the broker killed mid-run; a wrong password and a TLS failure (a clear error, recording
goes on locally); mutual TLS (a client certificate, issue 30); `emoedge run --mqtt` end to end on the
shared clip."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import Broker, Subscriber, need_mosquitto

from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, Outbox, interval_payload
from emoedge.edge.outputs.records import IntervalSummary, RunInfo

SHARED = Path(os.environ.get("EMOEDGE_SHARED", Path(__file__).resolve().parents[4] / "shared"))

CLIP = SHARED / "media" / "short_hamilton_clip.mp4"


def summary(k: int, run_id: str = "r1") -> IntervalSummary:
    t0 = 1_790_000_000_000_000_000 + k * 1_000_000_000
    return IntervalSummary(f"{run_id}-{k:05d}", run_id, t0, t0 + 999_000_000, 1.0, 15, 1, 14,
                           {"happy": 0.5, "neutral": 0.25, "uncertain": 0.25}, 0.7)


def sink_for(broker_url: str, tmp_path: Path, **kw) -> MqttSink:
    kw.setdefault("flush_timeout_s", 10.0)
    kw.setdefault("retry_max_s", 1.0)
    return MqttSink(MqttTarget.parse(broker_url), tmp_path / "outbox.sqlite", device="box1", room="room-a",
                    model="fast", **kw)


def test_target_parsing_and_payload():
    t = MqttTarget.parse("mqtt://u:p%40ss@broker.local:1884/school/west")
    assert (t.host, t.port, t.prefix, t.tls, t.username, t.password) == ("broker.local", 1884, "school/west", False,
                                                                        "u", "p@ss")
    assert str(t) == "mqtt://broker.local:1884/school/west"          # never the password
    assert MqttTarget.parse("mqtts://h").port == 8883 and MqttTarget.parse("mqtt://h").prefix == "emoedge"
    for bad in ("http://h", "mqtt://", "mqtt://h/a/#", "mqtt://h:99999"):
        with pytest.raises(ValueError, match="--mqtt"):
            MqttTarget.parse(bad)
    p = interval_payload(summary(3), "box1", "fast", "room-a")
    assert p["counts"] == {"happy": 7, "neutral": 4, "uncertain": 4} and p["uncertain_share"] == 0.25
    assert p["interval_id"] == "r1-00003" and p["device"] == "box1" and p["room"] == "room-a"
    assert not {"box", "crop", "image", "track_id"} & set(p)          # aggregates only
    assert p["budget_misses"] == 0 and p["budget_hit_rate"] == 1.0


def test_config_rejects_a_bad_mqtt_url_naming_the_key():
    from emoedge.edge.runtime.config import ConfigError, RuntimeConfig

    with pytest.raises(ConfigError, match="key 'mqtt'"):
        RuntimeConfig(mqtt="tcp://x")
    with pytest.raises(ConfigError, match="key 'mqtt'.*device id"):
        RuntimeConfig(mqtt="mqtt://x", mqtt_device="a/b")


def test_every_interval_arrives_in_order_with_the_broker_up(tmp_path):
    broker = Broker(tmp_path / "b").start()
    sub = Subscriber(broker.port)
    try:
        sink = sink_for(broker.url, tmp_path)
        sink.on_start(RunInfo.new(model="fast"))
        for k in range(30):
            sink.on_interval(summary(k))
        sink.close()
        got = sub.wait_for(30)
        assert [m["interval_id"] for m in got] == [summary(k).interval_id for k in range(30)]
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 30, "unsent": 0}
        time.sleep(0.3)
        st = sub.statuses()
        assert ("test/box1/status", "online", False) in st and st[-1][1] == "offline"
    finally:
        sub.close()
        broker.stop()


def test_broker_down_at_start_then_up_delivers_everything_once(tmp_path):
    broker = Broker(tmp_path / "b").start()
    sub = Subscriber(broker.port).registered(broker)     # the consumer's session is known to the broker
    broker.stop()
    try:
        sink = sink_for(broker.url, tmp_path, flush_timeout_s=20.0)
        sink.on_start(RunInfo.new(model="fast"))
        t = time.monotonic()
        for k in range(10):
            sink.on_interval(summary(k))                  # never waits on the broker
        assert time.monotonic() - t < 2.0
        time.sleep(1.0)
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 0, "unsent": 10}
        assert any("cannot connect" in p for p in sink.problems)
        broker.start()
        for k in range(10, 20):
            sink.on_interval(summary(k))
        sink.close()
        ids = [m["interval_id"] for m in sub.wait_for(20)]
        assert ids == [summary(k).interval_id for k in range(20)]       # all of them, once, in order
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 20, "unsent": 0}
    finally:
        sub.close()
        broker.stop()


def test_broker_killed_mid_run_loses_nothing(tmp_path):
    broker = Broker(tmp_path / "b").start()
    sub = Subscriber(broker.port, client_id="killed-sub").registered(broker)
    try:
        sink = sink_for(broker.url, tmp_path, flush_timeout_s=20.0)
        sink.on_start(RunInfo.new(model="fast"))
        for k in range(40):
            sink.on_interval(summary(k))
            time.sleep(0.02)
            if k == 15:
                broker.kill()                            # SIGKILL: no goodbye, in-flight messages unacknowledged
            if k == 25:
                broker.start()                           # same port; the subscriber's client reconnects itself
                time.sleep(0.5)
        sink.close()
        got = sub.wait_for(40, 20)
        ids = {m["interval_id"] for m in got}
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 40, "unsent": 0}
        want = {summary(k).interval_id for k in range(40)}
        assert ids == want, f"missing {sorted(want - ids)}"
        assert any("lost" in p or "cannot connect" in p for p in sink.problems)
    finally:
        sub.close()
        broker.stop()


def test_unacknowledged_intervals_are_sent_by_the_next_run(tmp_path):
    broker = Broker(tmp_path / "b")
    sink = sink_for(broker.url, tmp_path, flush_timeout_s=0.5)
    sink.on_start(RunInfo.new(model="fast"))
    for k in range(5):
        sink.on_interval(summary(k))
    sink.close()                                          # the box reboots with the broker still down
    assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 0, "unsent": 5}
    broker.start()
    sub = Subscriber(broker.port)
    try:
        again = sink_for(broker.url, tmp_path)             # the next run, same outbox
        again.on_start(RunInfo.new(model="fast"))
        again.on_interval(summary(0, run_id="r2"))
        again.close()
        ids = [m["interval_id"] for m in sub.wait_for(6)]
        assert ids == [summary(k).interval_id for k in range(5)] + ["r2-00000"]   # the old ones first
    finally:
        sub.close()
        broker.stop()


def test_wrong_password_is_a_clear_error_and_intervals_stay_local(tmp_path, caplog):
    broker = Broker(tmp_path / "b", users={"box": "right"}).start()
    try:
        url = broker.url.replace("mqtt://", "mqtt://box:Zq8pW2xx@")
        with caplog.at_level(logging.ERROR, logger="emoedge.edge.outputs.mqtt"):
            sink = sink_for(url, tmp_path, flush_timeout_s=0.5)
            sink.on_start(RunInfo.new(model="fast"))
            for k in range(4):
                sink.on_interval(summary(k))
            time.sleep(1.0)
            sink.close()
        assert any("refused" in p and ("authori" in p.lower() or "password" in p.lower()) for p in sink.problems), \
            sink.problems
        assert "Zq8pW2xx" not in caplog.text                # the password is never logged
        assert "kept in" in caplog.text and Outbox(tmp_path / "outbox.sqlite").counts()["unsent"] == 4
        # the right password: the same outbox goes out
        sub = Subscriber(broker.port, username="box", password="right")
        ok = sink_for(broker.url.replace("mqtt://", "mqtt://box:right@"), tmp_path)
        ok.on_start(RunInfo.new(model="fast"))
        ok.close()
        assert len(sub.wait_for(4)) == 4
        sub.close()
    finally:
        broker.stop()


def test_tls_failure_is_a_clear_error_and_the_ca_file_fixes_it(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make the broker's certificate")
    broker = Broker(tmp_path / "b", tls=True).start()      # a self-signed certificate no system CA vouches for
    try:
        sink = sink_for(broker.url, tmp_path, flush_timeout_s=0.5)
        sink.on_start(RunInfo.new(model="fast"))
        sink.on_interval(summary(0))
        time.sleep(1.0)
        sink.close()
        assert any(p.startswith("TLS failed") and "CERTIFICATE_VERIFY_FAILED" in p for p in sink.problems), \
            sink.problems
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 0, "unsent": 1}
        sub = Subscriber(broker.port, ca_file=broker.ca_file)
        ok = sink_for(broker.url, tmp_path, ca_file=str(broker.ca_file))       # --mqtt-ca-file
        ok.on_start(RunInfo.new(model="fast"))
        ok.close()
        assert [m["interval_id"] for m in sub.wait_for(1)] == [summary(0).interval_id]
        sub.close()
    finally:
        broker.stop()


def _run(args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "emoedge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


@pytest.mark.skipif(not CLIP.is_file(), reason=f"the shared clip is absent ({CLIP})")
def test_emoedge_run_with_the_broker_started_4_s_late_delivers_every_interval(tmp_path):
    need_mosquitto()
    broker = Broker(tmp_path / "b").start()
    sub = Subscriber(broker.port).registered(broker)       # the consumer's session is known to the broker
    broker.stop()
    db = tmp_path / "s.sqlite"
    proc = _run(["run", "--source", str(CLIP), "--realtime", "--interval-s", "1", "--model", "fast",
                 "--mqtt", broker.url, "--mqtt-device", "kiosk-7", "--db", str(db), "--mqtt-flush-s", "20"])
    time.sleep(4.0)
    broker.start()
    try:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        stored = sqlite3.connect(db).execute("SELECT interval_id FROM intervals ORDER BY start_unix_ns").fetchall()
        outbox = db.with_name("s.mqtt-outbox.sqlite")
        assert len(stored) >= 8                                   # a 9 s clip in 1 s intervals
        assert Outbox(outbox).counts() == {"sent": len(stored), "unsent": 0}
        got = sub.wait_for(len(stored), 10)
        assert [m["interval_id"] for m in got] == [r[0] for r in stored]      # every interval, once, in order
        assert all(m["device"] == "kiosk-7" and m["model"] == "fast" for m in got)
        assert "cannot connect" in err                            # the outage was said
    finally:
        sub.close()
        broker.stop()


def test_mutual_tls_without_the_client_certificate_is_refused_and_with_it_delivers(tmp_path):
    broker = Broker(tmp_path / "b", tls=True, require_certificate=True).start()   # a listener asking for one
    try:
        cert, key = broker.client_cert("box1")
        key.chmod(0o600)
        sink = sink_for(broker.url, tmp_path, flush_timeout_s=0.5, ca_file=str(broker.ca_file))
        sink.on_start(RunInfo.new(model="fast"))
        sink.on_interval(summary(0))
        time.sleep(1.5)
        sink.close()
        assert any(p.startswith("TLS failed") and "--mqtt-cert-file" in p for p in sink.problems), sink.problems
        assert Outbox(tmp_path / "outbox.sqlite").counts() == {"sent": 0, "unsent": 1}     # kept for later
        sub = Subscriber(broker.port, ca_file=broker.ca_file, cert=broker.client_cert("fleet"))
        ok = sink_for(broker.url, tmp_path, ca_file=str(broker.ca_file), cert_file=str(cert),
                      key_file=str(key))                                     # --mqtt-cert-file, --mqtt-key-file
        ok.on_start(RunInfo.new(model="fast"))
        ok.close()
        assert [m["interval_id"] for m in sub.wait_for(1)] == [summary(0).interval_id]
        assert not ok.problems
        sub.close()
    finally:
        broker.stop()
