"""Copying a fleet store into another (emoedge.fleet.copy, ``emoedge fleet copy``): a school's SQLite file into a
store on SQLite and on a real PostgreSQL (tests/pg_server.py): every interval once, its receive time kept, the page's
aggregates the same as the source's; a second copy stores nothing twice; invalid rows skipped and counted."""

from __future__ import annotations

import sqlite3

import pg_server as pg
from fleet_data import fill, good, raw

from emoedge.cli import main
from emoedge.fleet import FleetStore
from emoedge.fleet.copy import copy_store

pg_server, store_spec = pg.pg_server, pg.store_spec


def _school(path) -> FleetStore:
    store = FleetStore(path)
    fill(store)                                    # 3 devices x 20 intervals, two rooms
    with sqlite3.connect(path) as c:               # a row an older or damaged store holds: share_json not JSON
        c.execute("INSERT INTO intervals (interval_id, device, start_utc, end_utc, start_unix_ns, end_unix_ns, "
                  "share_json, received_unix_ns) VALUES ('bad-1', 'zz', 'x', 'y', 1, 2, '{oops', 5)")
    return store


def _received(store: FleetStore) -> dict[str, int]:
    with store.connect() as c:
        return {i: int(t) for i, t in c.execute("SELECT interval_id, received_unix_ns FROM intervals "
                                                "WHERE interval_id <> 'bad-1'")}


def test_a_copy_holds_every_interval_once_with_the_same_aggregates(store_spec, tmp_path):
    source, target = _school(tmp_path / "school.sqlite"), FleetStore(store_spec)
    res = copy_store(source, target, batch_rows=7)
    assert (res.read, res.stored, res.duplicate, res.conflict, res.skipped_invalid) == (61, 60, 0, 0, 1)
    assert target.rows() == source.rows() and len(target.rows()) == 60
    assert _received(target) == _received(source)
    s, t = source.view(), target.view()
    assert (t.rooms, t.fleet, t.fleet_share, t.intervals_in_range) == (s.rooms, s.fleet, s.fleet_share, 60)
    assert target.sequence() == source.sequence() == {d: {"runs": 1, "received": 20, "missing": 0}
                                                      for d in ("a1", "a2", "b1")}
    again = copy_store(source, target)
    assert (again.stored, again.duplicate) == (0, 60) and target.counts()["intervals"] == 60


def test_a_copy_keeps_the_targets_own_copy_of_a_conflicting_interval(tmp_path):
    source = _school(tmp_path / "school.sqlite")
    target = FleetStore(tmp_path / "district.sqlite")
    mine = good("a1", 0, frames=1, interval_id="a1-run-00000")        # the same id, other content
    with target.connect() as db:
        assert target.ingest(db, "s/a1/intervals", raw(mine)) == "stored"
    res = copy_store(source, target)
    assert (res.stored, res.conflict) == (59, 1)
    assert [r["frames"] for r in target.rows() if r["interval_id"] == "a1-run-00000"] == [1]


def test_fleet_copy_command(tmp_path, capsys):
    _school(tmp_path / "school.sqlite")
    args = ["fleet", "copy", "--from", str(tmp_path / "school.sqlite"), "--db", str(tmp_path / "district.sqlite")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "read 61 interval(s)" in out and "stored 60" in out and "1 invalid row(s) skipped" in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stored 0" in out and "60 already there" in out
    assert main(["fleet", "copy", "--from", str(tmp_path / "none.sqlite"), "--db", str(tmp_path / "d.sqlite")]) == 2
    assert "no such fleet store" in capsys.readouterr().err
    assert main(["fleet", "copy", "--from", str(tmp_path / "school.sqlite"),
                 "--db", str(tmp_path / "school.sqlite")]) == 2
    assert main(["fleet", "copy", "--from", "postgresql://u:pw@h/db", "--db", str(tmp_path / "d.sqlite")]) == 2
    assert "pw" not in capsys.readouterr().err
