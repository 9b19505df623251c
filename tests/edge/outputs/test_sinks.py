"""The record sinks (emoedge.edge.outputs.sinks): JSONL, SQLite and CSV export, schemas, retention, the disk floor and
full disks."""

import json
import sqlite3
import subprocess
import sys

import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector, SyntheticSource, Wall, _tmpfs

from emoedge.cli import main
from emoedge.core.errors import WriteError
from emoedge.core.fileio import DEVICE_SQLITE_CACHE_KIB
from emoedge.edge.faces.detect import Face
from emoedge.edge.faces.tracking import Track
from emoedge.edge.outputs.records import Aggregator, FaceEvent
from emoedge.edge.outputs.sinks import JsonlSink, SqliteSink, read_intervals
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline


def test_sinks_write_readable_records(tmp_path):
    ag = Aggregator(["happy"], 1.0)
    t = Track(1, (0, 0, 1, 1), 0, 0)
    t.label, t.confidence = "happy", 0.9
    ag.add(0, [t])
    summary = ag.flush(10)
    j = JsonlSink(tmp_path / "e.jsonl")
    j.on_event(FaceEvent(5, 1, 1, "happy", None, 0.9, (0, 0, 1, 1)))
    j.on_interval(summary)
    j.close()
    lines = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["face", "interval"] and lines[0]["label"] == "happy"
    db = SqliteSink(tmp_path / "s.sqlite")
    db.on_interval(summary)
    db.close()
    rows = read_intervals(tmp_path / "s.sqlite")
    assert rows[0]["faces_seen"] == 1 and rows[0]["share"]["happy"] == 1.0


CRASHER = r"""
import sys, os
from emoedge.edge.outputs.records import IntervalSummary
from emoedge.edge.outputs.sinks import SqliteSink
db = SqliteSink(sys.argv[1])
for i in range(3):
    db.on_interval(IntervalSummary(f"r-{i}", "r", i * 10**9, (i + 1) * 10**9, 1.0, 10, 2, 20, {"happy": 1.0}, 0.9))
db.db.execute("BEGIN")
db.db.execute("INSERT INTO intervals (interval_id, run_id, start_utc, end_utc, start_unix_ns, end_unix_ns, duration_s, "
              "frames, faces_seen, face_observations, mean_confidence, share_json) "
              "VALUES ('r-9', 'r', '', '', 9, 9, 0, 1, 1, 1, 0.5, '{}')")
os._exit(9)   # killed mid-interval: no close, no commit
"""


def test_sqlite_survives_a_writer_killed_mid_interval(tmp_path):
    path = tmp_path / "s.sqlite"
    r = subprocess.run([sys.executable, "-c", CRASHER, str(path)], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    rows = read_intervals(path)
    assert [r["interval_id"] for r in rows] == ["r-0", "r-1", "r-2"]   # the finished intervals, not the half one
    again = SqliteSink(path)                                  # and it reopens for writing
    again.close()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_bad_database_path_is_a_clear_error(tmp_path):
    bad = tmp_path / "db.sqlite"
    bad.write_text("this is not a database")
    with pytest.raises(ValueError, match="db.sqlite: not a SQLite database"):
        SqliteSink(bad)


def test_export_summaries_as_csv(tmp_path):
    import csv

    from emoedge.cli import main
    from emoedge.edge.outputs.records import IntervalSummary

    db = SqliteSink(tmp_path / "s.sqlite")
    db.on_interval(IntervalSummary("r-1", "r", 1_700_000_000 * 10**9, 1_700_000_010 * 10**9, 10.0, 5, 2, 8,
                                   {"happy": 0.75, "uncertain": 0.25}, 0.6))
    db.close()
    assert main(["export", "--db", str(tmp_path / "s.sqlite"), "--csv", str(tmp_path / "s.csv")]) == 0
    with open(tmp_path / "s.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["share_happy"] == "0.7500" and rows[0]["faces_seen"] == "2"
    assert rows[0]["start_utc"] == "2023-11-14T22:13:20.000Z"      # wall clock, UTC
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--csv", str(tmp_path / "x.csv")]) == 2


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


def test_the_summaries_page_cache_is_bounded_below_sqlites_default(tmp_path):
    """The soak's late growth was SQLite's page cache filling to its 2,000 KiB default as the file grew."""
    sink = SqliteSink(tmp_path / "s.sqlite")
    try:
        assert sink.db.execute("PRAGMA cache_size").fetchone()[0] == -DEVICE_SQLITE_CACHE_KIB
        assert DEVICE_SQLITE_CACHE_KIB < 2000
    finally:
        sink.close()


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
