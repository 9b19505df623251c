"""The fleet store and page (issue 19): duplicates dropped by interval id, bad messages rejected
and counted, the page's health and drift; `emoedge fleet serve` against a real Mosquitto with
devices publishing; the page in a real headless Chromium (screenshot and DOM)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mqtt_broker import Broker, free_port, need_mosquitto

from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, interval_payload
from emoedge.edge.outputs.records import IntervalSummary, RunInfo
from emoedge.fleet import FleetStore, FleetWeb, js_divergence, render_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
T0 = 1_790_000_000_000_000_000


def summary(dev: str, k: int, share: dict[str, float] | None = None) -> IntervalSummary:
    t = T0 + k * 60_000_000_000
    return IntervalSummary(f"{dev}-run-{k:05d}", f"{dev}-run", t, t + 59_000_000_000, 60.0, 900, 2, 800,
                           share or {"happy": 0.5, "neutral": 0.4, "uncertain": 0.1}, 0.7)


def fill(store: FleetStore, devices=("a1", "a2", "b1"), n: int = 20) -> None:
    db = store.connect()
    for d in devices:
        for k in range(n):
            sad = 0.6 if d == "b1" and k >= n // 2 else 0.1           # b1 drifts half way
            s = summary(d, k, {"happy": 0.7 - sad, "sad": sad, "neutral": 0.2, "uncertain": 0.1})
            p = interval_payload(s, d, "fast", room="room-a" if d.startswith("a") else "room-b")
            store.ingest(db, f"school/{d}/intervals", json.dumps(p).encode())
        store.ingest(db, f"school/{d}/status", b"offline" if d == "a2" else b"online")
    db.close()


def test_store_drops_duplicates_and_rejects_bad_messages(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    p = json.dumps(interval_payload(summary("a1", 0), "a1", "fast", "room-a")).encode()
    assert store.ingest(db, "s/a1/intervals", p) == "stored"
    assert store.ingest(db, "s/a1/intervals", p) == "duplicate"            # a resend: same interval id
    assert store.ingest(db, "s/a1/intervals", b"{not json") == "rejected"
    assert store.ingest(db, "s/a1/intervals", b'{"interval_id": "x"}') == "rejected"
    assert store.ingest(db, "s/a1/status", b"online") == "status"
    db.close()
    s = store.summary()
    assert len(s["intervals"]) == 1 and s["counters"] == {"stored": 1, "duplicate": 1, "rejected": 2}
    assert s["devices"]["a1"]["status"] == "online" and s["devices"]["a1"]["room"] == "room-a"


def test_js_divergence():
    assert js_divergence({"a": 1.0}, {"a": 1.0}) == 0.0
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert 0 < js_divergence({"a": 0.7, "b": 0.3}, {"a": 0.3, "b": 0.7}) < 1


def test_page_shows_rooms_devices_health_and_drift(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    fill(store)
    page = render_page(store.summary(), now_ns=T0 + 20 * 60_000_000_000)
    assert "3 devices, 60 intervals" in page and "room room-a" in page and "room room-b" in page
    assert page.count("<svg") == 2 + 3                                    # 2 rooms, 3 devices
    assert page.count('<polyline data-label="sad"') == 5
    rows = {d: page.split(f'data-device="{d}"')[1].split("</tr>")[0] for d in ("a1", "a2", "b1")}
    assert 'class="off">offline' in rows["a2"] and 'class="on">online' in rows["a1"]
    drift = {d: float(r.split("<td>")[-1].split("<")[0]) for d, r in rows.items()}
    assert drift["b1"] > 3 * drift["a1"]                                  # the drifting device stands out
    with pytest.raises(Exception):                                        # noqa: B017 (no script at all)
        page.index("<script")


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
        time.sleep(2.0)
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


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; .ci/run does)")
def test_page_in_a_real_headless_browser(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    fill(store)
    web = FleetWeb(store, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{web.port}/"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    try:
        dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
        shot = tmp_path / "fleet.png"
        subprocess.run(common + [f"--screenshot={shot}", "--window-size=1200,1400", url], capture_output=True,
                       timeout=90)
    finally:
        web.stop()
    assert "3 devices, 60 intervals" in dom.stdout, dom.stderr[-1000:]
    assert dom.stdout.count("<polyline") == 5 * 4                         # 5 charts x 4 labels, as rendered
    assert shot.is_file() and shot.stat().st_size > 20_000
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1200)
    assert (img < 250).any(axis=2).mean() > 0.02                          # something was drawn, not a blank page


@pytest.mark.skipif(not (Path(os.environ.get("EMOEDGE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
                         / "media" / "short_hamilton_clip.mp4").is_file(), reason="the shared clip is absent")
def test_bench_fleet_two_devices_every_interval_arrives_once(tmp_path):
    need_mosquitto()
    from emoedge.benchmarks.fleet_sim import bench_fleet, write_fleet_report
    from emoedge.benchmarks.soak import default_source

    res = bench_fleet(tmp_path, devices=2, seconds=5, source=default_source())
    md = write_fleet_report(res, tmp_path).read_text()
    assert res["intervals_in"] >= 6 and res["intervals_in"] == res["intervals_out"] and not res["missing"]
    assert all(d["exit_code"] == 0 and d["mqtt"]["unsent"] == 0 for d in res["per_device"].values())
    assert "every one, once" in md and res["publisher_cpu_ms_per_interval_mean"] > 0


def test_fleet_serve_with_an_unreadable_password_file_says_so_and_creates_nothing(tmp_path, capsys):
    from emoedge.cli import main

    missing = tmp_path / "nope.txt"
    rc = main(["fleet", "serve", "--mqtt", "mqtt://127.0.0.1:1/x", "--db", str(tmp_path / "f.sqlite"),
               "--password-file", str(missing), "--seconds", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{missing}: cannot read the MQTT password file" in err and "Traceback" not in err
    assert not (tmp_path / "f.sqlite").exists()       # refused before anything was created
