"""The schema's version (emoedge.fleet.migrations): a version-1 SQLite file (the first fleet store's SCHEMA) is
migrated in place and then reads as a store filled by today's ingest; a newer version is refused with exit 2; several
workers creating one PostgreSQL store at once make one schema."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pg_server as pg
import pytest
from fleet_data import fill, good, raw

from emoedge.core.errors import BadInputError
from emoedge.fleet import FleetStore, render_page
from emoedge.fleet.schema import COLUMNS, SCHEMA_VERSION, V1_SCHEMA
from emoedge.fleet.web import summary_json

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each


def _v1_file(path, messages) -> None:
    """A fleet store as the first version wrote it: its schema, its rows, its counters, no version recorded."""
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    for m in messages:
        db.execute(f"INSERT INTO intervals ({', '.join(COLUMNS)}, share_json, received_unix_ns) "
                   f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})",
                   [m[k] for k in COLUMNS] + [json.dumps(m["share"]), 1])
        db.execute("INSERT INTO devices (device, room) VALUES (?, ?) ON CONFLICT(device) DO NOTHING",
                   (m["device"], m["room"]))
    db.execute("INSERT INTO devices (device, status, status_unix_ns) VALUES ('d1', 'offline', 5) ON CONFLICT(device) "
               "DO UPDATE SET status = excluded.status")
    db.execute("INSERT INTO intervals (interval_id, device, start_utc, end_utc, start_unix_ns, end_unix_ns, "
               "share_json, received_unix_ns) VALUES ('bad-1', 'd1', 'a', 'b', 1, 2, '[0.5]', 0)")  # fails the checks
    db.executemany("INSERT INTO counters VALUES (?, ?)", [("stored", len(messages) + 1), ("duplicate", 4)])
    db.commit()
    db.close()


def test_a_version_1_file_is_migrated_in_place(tmp_path):
    msgs = [good(d, k) for d in ("d1", "d2") for k in (1, 2, 3, 5, 8)]
    _v1_file(tmp_path / "old.sqlite", msgs)
    old = FleetStore(tmp_path / "old.sqlite")
    assert old.migrated_from == 1
    new = FleetStore(tmp_path / "new.sqlite")
    db = new.connect()
    new.ingest_many(db, [(f"s/{m['device']}/intervals", raw(m)) for m in msgs])
    new.ingest_many(db, [("s/d1/status", b"offline")])
    db.close()
    assert old.sequence() == new.sequence() == old.gaps_sql() == {d: {"runs": 1, "received": 5, "missing": 3}
                                                                  for d in ("d1", "d2")}
    a, b = json.loads(summary_json(old)), json.loads(summary_json(new))
    assert a["rooms"] == b["rooms"] and a["fleet_share"] == b["fleet_share"] and a["intervals_in_range"] == 10
    assert a["counters"] == {"stored": 11, "duplicate": 4}                  # the old counters are kept
    assert a["devices"]["d1"]["status"] == "offline" and a["devices"]["d1"]["intervals"] == 5
    assert len(old.rows()) == 10
    assert "2 devices, 10 intervals" in render_page(old.view())
    db = old.connect()
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()
    assert FleetStore(tmp_path / "old.sqlite").migrated_from == SCHEMA_VERSION   # once: the next open finds it done


def test_a_migration_keeps_the_page_of_a_filled_v1_store(tmp_path):
    fresh = FleetStore(tmp_path / "fresh.sqlite")
    fill(fresh)
    _v1_file(tmp_path / "old.sqlite", fresh.rows())
    page = render_page(FleetStore(tmp_path / "old.sqlite").view(), now_ns=1)
    assert "4 devices, 60 intervals" in page and page.count("<svg") == 7    # + d1: a status only (_v1_file)


def test_a_newer_schema_is_refused_with_exit_2(store_spec):
    store = FleetStore(store_spec)
    db = store.connect()
    db.execute(store.backend.q("UPDATE schema_version SET version = ?"), (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(BadInputError, match="newer") as e:
        FleetStore(store_spec)
    assert e.value.exit_code == 2


def test_a_file_that_is_not_a_database_is_bad_input(tmp_path):
    (tmp_path / "x.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(BadInputError, match="x.sqlite"):
        FleetStore(tmp_path / "x.sqlite")


def test_workers_opening_one_new_postgresql_store_at_once_make_one_schema(pg_server):
    url = pg_server.new_db()
    errors, found = [], []

    def worker():
        try:
            found.append(FleetStore(url).migrated_from)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.001)
    for t in threads:
        t.join(60)
    assert not errors and sorted(found) == [0, 2, 2, 2]
