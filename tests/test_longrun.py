"""A runtime that survives weeks unattended (issue 14): bounded memory, wall-clock records,
privacy enforced on every route, retention and the disk floor, honest failures and exit codes,
--loop / --realtime / --video-out pacing. Each test here fails on the runtime before this issue."""

import csv
import json
import sqlite3
import time
import tracemalloc
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from test_runtime import FakeClock, FakeDetector, SyntheticSource, _DyingCamera

from emoedge.cli import main
from emoedge.core.errors import WriteError
from emoedge.edge.deployment.profiles import load_profile
from emoedge.edge.faces.detect import Face
from emoedge.edge.faces.tracking import IoUTracker
from emoedge.edge.outputs.sinks import JsonlSink, Sink, SqliteSink, export_csv, read_intervals
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import SourceError, open_source
from emoedge.edge.runtime.stats import LatencyStats

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PURPOSE = ["--set", "deployment.purpose=safety study under ethics approval", "--set", "deployment.jurisdiction=UK"]


class FakeClassifier:
    """Always 'happy' with 0.9: the pipeline's bookkeeping without a model."""
    class_names = CLASSES
    margin = 0.0

    def predict(self, batch):
        p = np.full((len(batch), 7), 0.1 / 6, np.float32)
        p[:, 3] = 0.9
        return p


class WalkingDetector:
    """A face that walks right and leaves; a new one enters every ``period`` detections."""
    name = "walking"

    def __init__(self, period=20):
        self.calls, self.period = 0, period

    def detect(self, frame, scale=1.0):
        self.calls += 1
        x = (self.calls % self.period) * 16
        return [Face(x, 40, 60, 60)] if x + 60 <= frame.shape[1] else []


def _video(path, frames=20, fps=10.0, size=(160, 120)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 40 + 5 * i % 200, np.uint8)
        w.write(img)
    w.release()
    return path


# -- memory -----------------------------------------------------------------------------------
def test_latency_stats_are_constant_memory_and_percentiles_within_one_percent(rng):
    st = LatencyStats()
    size = st.counts.nbytes
    values = rng.lognormal(1.0, 0.8, 200_000)
    for v in values:
        st.add(float(v))
    assert st.counts.nbytes == size and st.n == len(values)
    for q in (50, 95, 99):
        assert st.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.011)
    s = st.summary()
    assert s.max_ms == pytest.approx(values.max()) and s.mean_ms == pytest.approx(values.mean())


def test_tracker_keeps_no_ended_tracks():
    tr = IoUTracker(max_misses=0)
    for i in range(2000):
        tr.update([Face((i * 97) % 500, 0, 20, 20)], i, (640, 360))
    assert tr.total_tracks == 2000 and tr.ended == 1999 and len(tr.tracks) == 1
    assert isinstance(tr.ended, int)


def _traced_peak(frames):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, detect_every=3, interval_s=3600, status_every_s=0),
                 source=SyntheticSource(clock, frames, (120, 320, 3)), detector=WalkingDetector(),
                 classifier=FakeClassifier(), clock=clock, sinks=[])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    s = p.run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert s.frames == frames and s.faces_seen >= 5
    return peak - base


def test_pipeline_memory_does_not_grow_with_the_number_of_frames():
    short, long = _traced_peak(500), _traced_peak(5000)
    # before: 7 latency lists and the ended tracks grew by ~350 bytes a frame (1.6 MB over 4,500 frames)
    assert long - short < 150_000, (short, long)


# -- wall-clock records -------------------------------------------------------------------------
class Wall:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        self.t += 10_000_000
        return self.t


def test_records_carry_wall_clock_time_and_sort_across_a_reboot(tmp_path):
    db, ev = tmp_path / "s.sqlite", tmp_path / "e.jsonl"
    t_before = 1_790_000_000 * 10**9             # 2026-09-21
    for mono_start, wall_start in ((10**15, t_before), (1_000, t_before + 3600 * 10**9)):  # reboot: monotonic restarts
        clock = FakeClock()
        clock.t = mono_start
        cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, db=str(db), events=str(ev), status_every_s=0)
        p = Pipeline(cfg, source=SyntheticSource(clock, 30), detector=FakeDetector(clock, [Face(10, 10, 60, 60)], 1),
                     classifier=FakeClassifier(), clock=clock, wall_clock=Wall(wall_start))
        s = p.run()
        assert s.exit_code == 0 and s.intervals_written >= 2
    rows = read_intervals(db)
    runs = [r["run_id"] for r in rows]
    first_run = runs[0]
    assert runs == sorted(runs, key=lambda r: r != first_run)    # every interval of the first boot comes first
    assert rows[0]["start_utc"].startswith("2026-09-21T") and rows[-1]["start_utc"] > rows[0]["start_utc"]
    assert all(r["start_unix_ns"] >= t_before and r["duration_s"] >= 0 for r in rows)
    assert all(r["boot_id"] for r in rows)
    lines = [json.loads(x) for x in ev.read_text().splitlines()]
    assert [x["type"] for x in lines].count("run") == 2
    assert all(x["time_utc" if x["type"] in ("face", "run") and "time_utc" in x else "start_utc"
                 if x["type"] == "interval" else "started_utc"].startswith("2026-09-21") for x in lines)
    export_csv(db, tmp_path / "s.csv")
    with open(tmp_path / "s.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["start_utc"] for r in table] == sorted(r["start_utc"] for r in table)
    assert table[0]["run_id"] == first_run and table[0]["start_utc"].endswith("Z")


def test_a_database_of_another_schema_is_refused_before_the_first_frame(tmp_path, capsys):
    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.execute("CREATE TABLE intervals (id INTEGER PRIMARY KEY, start_ns INTEGER, end_ns INTEGER)")
    con.execute("INSERT INTO intervals VALUES (1, 5, 6)")
    con.commit()
    con.close()
    code = main(["run", "--source", "demo", "--max-frames", "2", "--db", str(old)])
    err = capsys.readouterr().err
    assert code == 2 and "old.sqlite" in err and "schema" in err and "Traceback" not in err
    assert sqlite3.connect(old).execute("SELECT COUNT(*) FROM intervals").fetchone()[0] == 1   # untouched
    newer = tmp_path / "newer.sqlite"
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version=99")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="newer emoedge"):
        SqliteSink(newer)


# -- privacy, enforced on the resolved configuration ---------------------------------------------
@pytest.mark.parametrize("route", [
    ["--video-out", "{out}"],
    ["--display"],
    ["--fullscreen"],
    ["--set", "runtime.video_out={out}"],
    ["--set", "runtime.display=true"],
    ["--set", "deployment.keep_images=true", "--video-out", "{out}"],
    ["--set", "runtime.privacy=images", "--video-out", "{out}"],
    ["--set", "deployment.mode=dev", "--video-out", "{out}"],
])
def test_the_classroom_profile_cannot_store_or_show_a_face_by_any_flag(route, tmp_path, capsys):
    out = tmp_path / "faces.avi"
    args = ["run", "--profile", "classroom-sensor-rpi4", "--source", "demo", "--detector", "haar",
            "--db", str(tmp_path / "s.sqlite"), "--max-frames", "3", *PURPOSE] + [a.format(out=out) for a in route]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "privacy rule" in err or "keep_images" in err, err


def test_the_classroom_profile_refuses_images_through_the_python_api_too():
    prof = load_profile("classroom-sensor-rpi4")
    with pytest.raises(ConfigError, match="privacy rule 'no-images'"):
        prof.runtime.replace(video_out="faces.mp4")
    with pytest.raises(ConfigError, match="privacy rule 'no-images'"):
        prof.runtime.replace(display=True)
    with pytest.raises(ConfigError, match="privacy rule 'no-images'"):
        RuntimeConfig.from_dict({"privacy": "no-images", "fullscreen": True}, "my.yaml")
    kiosk = load_profile("kiosk-rpi4")                 # a kiosk shows, but stores nothing unless allowed
    with pytest.raises(ConfigError, match="privacy rule 'no-video'"):
        kiosk.runtime.replace(video_out="faces.mp4")


def test_the_classroom_profile_needs_a_purpose_and_stores_it_with_every_record(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    base = ["run", "--profile", "classroom-sensor-rpi4", "--source", "demo", "--detector", "haar", "--db", str(db),
            "--max-frames", "5", "--threads", "1", "--set", f"deployment.data_dir={tmp_path}"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "deployment.purpose" in err and "Article 5(1)(f)" in err and not db.exists()
    assert main(base + PURPOSE) == 0
    rows = read_intervals(db)
    assert rows and all(r["purpose"] == "safety study under ethics approval" and r["jurisdiction"] == "UK"
                        for r in rows)
    with open(tmp_path / "summaries.csv") as f:                           # deployment.export_csv: true
        exported = list(csv.DictReader(f))
    assert len(exported) == len(rows) and exported[0]["purpose"] == rows[0]["purpose"]
    assert "purpose: safety study under ethics approval" in (tmp_path / "emoedge.log").read_text()


# -- retention and the disk floor -------------------------------------------------------------
def test_retention_deletes_old_intervals_and_keeps_new_ones(tmp_path):
    db = tmp_path / "s.sqlite"
    day = 86400 * 10**9
    now = 1_790_000_000 * 10**9
    for start, n in ((now - 40 * day, 3), (now, 2)):
        clock = FakeClock()
        cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, db=str(db), retention_days=30, status_every_s=0)
        Pipeline(cfg, source=SyntheticSource(clock, n + 1), detector=FakeDetector(clock, [], 1),
                 classifier=FakeClassifier(), clock=clock, wall_clock=Wall(start)).run()
    rows = read_intervals(db)
    assert rows and all(r["start_unix_ns"] >= now for r in rows)          # the 40-day-old run is gone


def test_below_the_disk_floor_nothing_is_written_the_run_goes_on_and_says_so(tmp_path):
    clock = FakeClock()
    cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, db=str(tmp_path / "s.sqlite"),
                        events=str(tmp_path / "e.jsonl"), min_free_mb=10**9, metrics_port=0, status_every_s=0)
    p = Pipeline(cfg, source=SyntheticSource(clock, 40), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                 classifier=FakeClassifier(), clock=clock)
    health = p._health_snapshot
    s = p.run()
    assert s.frames == 40 and s.records_lost > 10 and s.exit_code == 4
    assert any("below the floor" in e and "s.sqlite" in e for e in s.write_errors)
    assert (tmp_path / "e.jsonl").read_text() == ""
    assert any(x.startswith("storage:") for x in health()["problems"])


class _FailsOnLastInterval(Sink):
    path = "broken.db"

    def on_interval(self, summary):
        raise OSError(28, "No space left on device")


def test_the_final_interval_write_error_is_not_swallowed(tmp_path):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, interval_s=3600, status_every_s=0), source=SyntheticSource(clock, 5),
                 detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(), clock=clock,
                 sinks=[_FailsOnLastInterval()])
    s = p.run()
    assert s.exit_code == 4 and s.records_lost == 1 and "No space left" in s.write_errors[0]
    assert "RECORDS LOST" in s.text()


def test_events_on_a_full_disk_name_the_file_and_a_half_line_is_repaired(tmp_path):
    full = JsonlSink("/dev/full")
    with pytest.raises(WriteError, match="/dev/full: No space left on device"):
        full.on_event(type("E", (), {"to_dict": lambda self: {"type": "face"}})())
    full.close()                      # nothing is buffered that could flush half a line later
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"type": "face", "label": "happy"}\n{"type": "interval", "sha')   # cut by a power loss
    sink = JsonlSink(path)
    sink.on_event(type("E", (), {"to_dict": lambda self: {"type": "face", "label": "sad"}})())
    sink.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["label"] for x in lines] == ["happy", "sad"]


def test_events_file_rotates_at_its_size_and_every_file_names_its_run(tmp_path):
    """Weeks of label changes stay bounded on disk: events.jsonl rotates like a log at events_max_mb
    (events.jsonl.1 .. .events_keep, the oldest dropped), each file a valid JSON Lines file that starts with
    the run's line; nothing is lost to a rotation."""
    clock = FakeClock()
    path = tmp_path / "e.jsonl"
    cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, events=str(path), events_max_mb=0.004, events_keep=2,
                        min_free_mb=0, status_every_s=0)
    s = Pipeline(cfg, source=SyntheticSource(clock, 1500), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                 classifier=FakeClassifier(), clock=clock).run()
    assert s.exit_code == 0 and s.records_lost == 0
    files = [path, tmp_path / "e.jsonl.1", tmp_path / "e.jsonl.2"]
    assert all(f.is_file() for f in files) and not (tmp_path / "e.jsonl.3").exists()
    for f in files:
        assert f.stat().st_size <= 0.004 * 2**20
        lines = [json.loads(x) for x in f.read_text().splitlines()]     # every line whole
        assert lines[0]["type"] == "run" and lines[0]["run_id"] == s.run_id
        assert lines[0].get("continued") is True                      # all three are continuations by now
        assert len(lines) > 5 and all(x["type"] != "run" for x in lines[1:])
    kept = [json.loads(x) for f in reversed(files) for x in f.read_text().splitlines()]   # oldest file first
    starts = [x["start_unix_ns"] for x in kept if x["type"] == "interval"]
    assert len(starts) > 10 and starts == sorted(starts) and len(set(starts)) == len(starts)  # in order, once
    with pytest.raises(ConfigError, match="events_keep"):
        RuntimeConfig(events_keep=0)


def _tmpfs(path, size="64k"):
    import subprocess

    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({r.stderr.strip() or 'mount failed'}): needs root")
    return path


def test_a_really_full_disk_leaves_whole_lines_and_an_intact_database(tmp_path):
    import subprocess

    d = _tmpfs(tmp_path / "small", "256k")
    try:
        clock = FakeClock()
        cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, db=str(d / "s.sqlite"), events=str(d / "e.jsonl"),
                            min_free_mb=0, status_every_s=0)
        s = Pipeline(cfg, source=SyntheticSource(clock, 3000), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                     classifier=FakeClassifier(), clock=clock).run()
        assert s.frames == 3000 and s.records_lost > 0 and s.exit_code == 4      # the run went on
        assert any("e.jsonl: No space left on device" in e for e in s.write_errors)
        text = (d / "e.jsonl").read_bytes()
        assert text.endswith(b"\n") and all(json.loads(x) for x in text.splitlines())   # no half line
        con = sqlite3.connect(d / "s.sqlite")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        assert len(read_intervals(d / "s.sqlite")) >= 1
    finally:
        subprocess.run(["umount", str(d)], check=False)


# -- honest failures ---------------------------------------------------------------------------
def test_one_unreadable_image_is_reported_and_skipped(tmp_path, capsys):
    from matplotlib import cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    for name in ("a.jpg", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    code = main(["run", "--source", str(tmp_path), "--model", "fast", "--summary-json", str(tmp_path / "s.json")])
    captured = capsys.readouterr()
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 2 and s["unreadable_inputs"] == 1 and code == 2
    assert "b.jpg: not a readable image" in captured.err


def test_a_lost_camera_exits_3(tmp_path):
    clock = FakeClock()
    s = Pipeline(RuntimeConfig(budget_ms=1000, db=str(tmp_path / "d.db"), status_every_s=0),
                 source=_DyingCamera(clock, 4), detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(),
                 clock=clock).run()
    assert s.stopped_by == "source_failed" and s.exit_code == 3 and read_intervals(tmp_path / "d.db")


@pytest.mark.parametrize("args,needle", [
    (["--threads", "0"], "key 'threads' must be >= 1"),
    (["--metrics-port", "99999"], "key 'metrics_port' must be >= 0 and <= 65535"),
    (["--interval-s", "-1"], "key 'interval_s' must be > 0"),
    (["--budget-ms", "0"], "key 'budget_ms' must be > 0"),
])
def test_bad_values_on_the_command_line_name_the_key(args, needle, capsys):
    code = main(["run", "--source", "demo", "--max-frames", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "--" + args[0].lstrip("-") in err and "model" not in err.split(":")[1]


def test_a_metrics_port_in_use_names_the_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(OSError, match=f"metrics endpoint 127.0.0.1:{port} .*cannot listen"):
            Pipeline(RuntimeConfig(metrics_port=port, model="fast"), source=open_source("demo"))
    finally:
        s.close()


def test_health_is_unhealthy_while_no_frames_come():
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(metrics_port=0, stale_after_s=5), source=SyntheticSource(clock, 1),
                 detector=FakeDetector(clock, [], 1), classifier=FakeClassifier(), clock=clock)
    try:
        port = p.metrics.address[1]
        ok = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        assert ok["status"] == "ok"
        clock.advance_ms(6000)                            # the camera has been silent for 6 s
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        assert exc.value.code == 503
        body = json.loads(exc.value.read())
        assert body["status"] == "unhealthy" and body["problems"][0].startswith("stale: no frame for 6.0 s")
    finally:
        p._close()


# -- files: loop, realtime, video pace -----------------------------------------------------------
def test_loop_replays_a_video_and_a_folder(tmp_path):
    video = _video(tmp_path / "v.avi", frames=10)
    src = open_source(str(video), loop=True)
    frames = [src.read() for _ in range(25)]
    src.close()
    assert all(f is not None for f in frames) and [f.index for f in frames] == list(range(25))
    assert [i for i, f in enumerate(frames) if f.discontinuity] == [10, 20]
    s = Pipeline(RuntimeConfig(source=str(video), loop=True, max_frames=35, budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    assert s.frames == 35 and s.stopped_by == "max_frames"
    with pytest.raises(SourceError, match="--loop replays files"):
        open_source("0", loop=True)


def test_realtime_paces_a_file_at_its_frame_rate(tmp_path):
    video = _video(tmp_path / "v.avi", frames=15, fps=10.0)     # 1.5 s of video
    t = time.monotonic()
    s = Pipeline(RuntimeConfig(source=str(video), realtime=True, budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    took = time.monotonic() - t
    assert s.frames + s.dropped_frames == 15 and took >= 1.3, took


def test_video_out_plays_at_the_sources_pace(tmp_path):
    video = _video(tmp_path / "v.avi", frames=24, fps=12.0)
    out = tmp_path / "out.avi"
    s = Pipeline(RuntimeConfig(source=str(video), video_out=str(out), budget_ms=1000, status_every_s=0),
                 detector=FakeDetector(FakeClock(), [], 1), classifier=FakeClassifier()).run()
    cap = cv2.VideoCapture(str(out))
    fps, n = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert s.frames == 24 and fps == pytest.approx(12.0) and n == 24     # 2 s in, 2 s out


# -- every deployment field does something ------------------------------------------------------
def test_the_systemd_unit_is_rendered_from_the_profiles_deployment(capsys):
    from pathlib import Path

    template = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "emoedge-sensor.service"
    args = ["profile", "unit", "classroom-sensor-rpi4", "--template", str(template), "--prefix", "/srv/e",
            "--set", "deployment.watchdog_s=30", "--set", "deployment.restart=on-failure",
            "--set", "deployment.user=sensor", "--set", "deployment.data_dir=/mnt/d", *PURPOSE]
    assert main(args) == 0
    unit = capsys.readouterr().out
    lines = unit.splitlines()
    for want in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=sensor", "WorkingDirectory=/mnt/d",
                 "ReadWritePaths=/mnt/d", "RestartPreventExitStatus=2"):
        assert want in lines, (want, unit)
    exec_start = next(ln for ln in lines if ln.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/srv/e/venv/bin/emoedge run --profile classroom-sensor-rpi4")
    assert "'deployment.purpose=safety study under ethics approval'" in exec_start
    assert lines.index("ReadWritePaths=/mnt/d") < lines.index("[Install]")
    assert main(["profile", "unit", "classroom-sensor-rpi4", "--template", str(template),
                 "--set", "deployment.watchdog_s=0"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert "Type=simple" in plain and not any(ln.startswith("WatchdogSec") for ln in plain)


class _StillFull(Sink):
    """A database that takes intervals only (no events) on a disk that stays full."""
    path = "full.sqlite"

    def on_interval(self, summary):
        raise OSError(28, "No space left on device")



def test_an_event_never_clears_a_storage_problem_of_a_sink_that_takes_no_events(caplog):
    clock = FakeClock()
    p = Pipeline(RuntimeConfig(budget_ms=1000, interval_s=0.005, status_every_s=0),
                 source=SyntheticSource(clock, 30), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                 classifier=FakeClassifier(), clock=clock, sinks=[_StillFull()])
    with caplog.at_level("WARNING", logger="emoedge"):
        s = p.run()                       # label events reach the pipeline between failing intervals
    assert s.events_written >= 1 and s.records_lost >= 2
    assert "writing again" not in caplog.text
    assert s.intervals_written == 0       # made, but not stored
    assert p._health_snapshot()["problems"][0].startswith("storage: full.sqlite")
