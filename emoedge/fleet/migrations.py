"""The fleet store's schema version, checked at open: a new store is created at the current version, an
older one is migrated in place (in one transaction: a failure leaves it as it was), a newer one is
refused (exit 2: this emoedge does not know its tables). Several workers opening one PostgreSQL at
once take an advisory lock, so one of them creates or migrates and the others find it done.

Version 1 -> 2 (the first SQLite fleet store): the new columns, tables and indexes, then every stored
interval once, device by device (memory bounded by one device's rows), to fill the sequence columns,
the runs, the devices' counts and the rollups. Rows that do not pass today's checks are left out of
them (and logged), as the page leaves them out."""

from __future__ import annotations

import logging

from emoedge.core.errors import BadInputError
from emoedge.fleet.backends import executemany
from emoedge.fleet.ingest import add_devices, add_runs, assign_slots, checked, split_id
from emoedge.fleet.rollups import RollupSums
from emoedge.fleet.schema import COLUMNS, SCHEMA_VERSION, V2_COLUMNS, fresh_statements, typed, v2_statements

log = logging.getLogger("emoedge.fleet.store")


def stored_version(backend, db) -> int:
    """0: an empty database; 1: the first fleet store (no version recorded); else the recorded version."""
    if backend.table_exists(db, "schema_version"):
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 1
    return 1 if backend.table_exists(db, "intervals") else 0


def prepare(backend, db) -> int:
    """Create, migrate or check the store's schema; the version found (``BadInputError`` for a newer one)."""
    with backend.transaction(db):
        backend.lock(db)
        found = stored_version(backend, db)
        if found > SCHEMA_VERSION:
            raise BadInputError(f"{backend.describe}: a fleet store of schema version {found}, newer than this "
                                f"emoedge knows ({SCHEMA_VERSION}): upgrade emoedge to open it")
        if found == SCHEMA_VERSION:
            return found
        if found == 0:
            for sql in fresh_statements(backend.dialect):
                db.execute(sql)
        else:
            migrate_v1(backend, db)
        db.execute("DELETE FROM schema_version")
        db.execute(backend.q("INSERT INTO schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))
    if found:
        log.warning("fleet: %s: migrated from schema version %d to %d", backend.describe, found, SCHEMA_VERSION)
    return found


def migrate_v1(backend, db) -> None:
    for table, cols in V2_COLUMNS.items():
        have = backend.columns(db, table)
        for col in cols:
            if col.split()[0] not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {typed(col, backend.dialect)}")
    for sql in v2_statements(backend.dialect):
        db.execute(sql)
    derive_all(backend, db)


def derive_all(backend, db) -> dict[str, int]:
    """Fill the sequence columns, runs, devices' counts and rollups from the stored intervals (an empty
    runs/rollups/labels state is assumed); the numbers of rows used and left out."""
    devices = [r[0] for r in db.execute("SELECT DISTINCT device FROM intervals ORDER BY device").fetchall()]
    slots: dict = {}
    sums = RollupSums()
    used = bad = 0
    cols = f"{', '.join(COLUMNS)}, share_json"
    for device in devices:
        raw = db.execute(backend.q(f"SELECT {cols} FROM intervals WHERE device = ? ORDER BY start_unix_ns"),
                         (device,)).fetchall()
        rows = [r for r in map(checked, raw) if r is not None]
        bad += len(raw) - len(rows)
        used += len(rows)
        slots = assign_slots(backend, db, {k for r in rows for k in r["share"]}, slots)
        executemany(db, backend.q("UPDATE intervals SET seq_run = ?, seq = ? WHERE interval_id = ?"),
                    [(*split_id(r["interval_id"]), r["interval_id"]) for r in rows if split_id(r["interval_id"])])
        add_devices(backend, db, rows, {})
        add_runs(backend, db, rows)
        for r in rows:
            sums.add(r, slots)
        if len(sums) > 20_000:
            sums.write(backend, db)
    sums.write(backend, db)
    if bad:
        log.warning("fleet: %s: %d stored interval(s) do not pass the checks: left out of the rollups",
                    backend.describe, bad)
    return {"used": used, "left_out": bad}
