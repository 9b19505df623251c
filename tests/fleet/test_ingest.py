"""Batched ingest (emoedge.fleet.ingest) on SQLite and a real PostgreSQL: several writers store each interval once,
duplicates and conflicts inside one batch, what PostgreSQL cannot hold is refused, labels past the rollup slots, the
gaps of the runs table against the same gaps computed from the intervals in SQL."""

from __future__ import annotations

import json
import random
import threading

import pg_server as pg
from fleet_data import good, raw

from emoedge.fleet import FleetStore, StoreError
from emoedge.fleet.ingest import split_id
from emoedge.fleet.schema import NSLOTS

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each


def _messages(devices=3, per_device=100, skip=(17, 18, 50)) -> list[tuple[str, bytes]]:
    return [(f"s/{d}/intervals", raw(good(d, k))) for d in (f"d{i}" for i in range(devices))
            for k in range(1, per_device + 1) if k not in skip]


def _totals(store: FleetStore) -> dict:
    db = store.connect()
    try:
        sql = {"intervals": "COUNT(*) FROM intervals", "hour": "SUM(intervals) FROM rollup_hour",
               "day": "SUM(intervals) FROM rollup_day", "devices": "SUM(intervals) FROM devices",
               "received": "SUM(received) FROM runs"}
        return {k: int(db.execute(f"SELECT {v}").fetchone()[0]) for k, v in sql.items()}
    finally:
        db.close()


def test_two_writers_store_each_interval_exactly_once(store_spec):
    """Two connections write the same 291 intervals at once in shuffled batches: each is stored once, and the rollups,
    devices, runs and counters count it once (the other copy is a duplicate)."""
    store = FleetStore(store_spec)
    msgs = _messages()
    errors = []

    def writer(seed: int) -> None:
        mine = msgs[:]
        random.Random(seed).shuffle(mine)
        db = store.connect()
        try:
            for i in range(0, len(mine), 40):
                store.ingest_many(db, mine[i:i + 40])
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    n = len(msgs)
    assert _totals(store) == {"intervals": n, "hour": n, "day": n, "devices": n, "received": n}
    s = store.summary()
    assert s["counters"] == {"stored": n, "duplicate": n}
    gaps = {f"d{i}": {"runs": 1, "received": 97, "missing": 3} for i in range(3)}
    assert store.sequence() == store.gaps_sql() == gaps


def test_duplicates_and_conflicts_inside_one_batch(store_spec):
    store = FleetStore(store_spec)
    db = store.connect()
    batch = [("s/d1/intervals", raw(good())), ("s/d1/intervals", raw(good())), ("s/d1/intervals", raw(good(frames=3))),
             ("s/d1/status", b"online"), ("s/d1/intervals", b"[]")]
    assert store.ingest_many(db, batch) == ["stored", "duplicate", "conflict", "status", "rejected"]
    assert store.ingest_many(db, batch[:3]) == ["duplicate", "duplicate", "conflict"]
    db.close()
    assert store.rows()[0]["frames"] == 900
    assert store.summary()["counters"] == {"stored": 1, "duplicate": 3, "conflict": 2, "rejected": 1}


def test_text_postgresql_cannot_hold_is_refused_not_a_failing_batch(store_spec):
    store = FleetStore(store_spec)
    db = store.connect()
    kinds = store.ingest_many(db, [("s/d1/intervals", raw(good(room="a\x00b"))),
                                   ("s/d1/intervals", raw(good("d1", 2))),
                                   ("s/d\x001/status", b"online"),
                                   ("s/d1/intervals", raw(good(share={"ha\x00ppy": 1.0})))])
    db.close()
    assert kinds == ["rejected", "stored", "rejected", "rejected"]


def test_labels_past_the_rollup_slots_stay_in_the_intervals(store_spec):
    store = FleetStore(store_spec)
    db = store.connect()
    labels = [f"label{i:02d}" for i in range(NSLOTS + 8)]
    msgs = [("s/d1/intervals", raw(good("d1", k + 1, share={lab: 0.05 for lab in labels[k * 20:(k + 1) * 20]})))
            for k in range(2)]
    assert store.ingest_many(db, msgs) == ["stored", "stored"]
    slots = dict(db.execute("SELECT label, slot FROM labels").fetchall())
    db.close()
    assert len(slots) == 40 and sorted(s for s in slots.values() if s is not None) == list(range(NSLOTS))
    csv_head = b"".join(store.csv_chunks()).split(b"\r\n")[0].decode()
    assert all(f"share_{lab}" in csv_head for lab in labels)
    assert len(store.view().fleet_share) == NSLOTS                   # drawn: the labels with a slot


def test_a_failing_database_raises_store_error_and_writes_nothing(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    db.execute("DROP TABLE rollup_day")                               # the batch fails half way
    try:
        store.ingest_many(db, [("s/d1/intervals", raw(good()))])
        raise AssertionError("no StoreError")
    except StoreError as exc:
        assert "fleet.sqlite" in str(exc) and exc.exit_code == 4
    assert db.execute("SELECT COUNT(*) FROM intervals").fetchone()[0] == 0
    db.close()


def test_split_id():
    assert split_id("box-7-20260901-00012") == ("box-7-20260901", 12)
    assert split_id("nodash") is None and split_id("r-1234567890") is None and split_id("r-١٢") is None
    assert json.loads(raw(good()))["interval_id"].endswith("-00001")
