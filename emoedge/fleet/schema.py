"""The fleet store's schema, one for SQLite and PostgreSQL (types filled in per database), and its version.

Version 1 (no version recorded) is the SQLite file of the first fleet store: ``intervals``, ``devices``,
``counters``. Version 2 adds what a district needs, kept up to date on every insert in the same
transaction (so the page never scans raw intervals):

- ``intervals.seq_run`` / ``intervals.seq``: the ``<run>-<seq>`` parts of the interval id, and indexes
  for (device, start), (room, start) and (start, device);
- ``runs``: per device and run, the highest sequence number and how many arrived (gaps in SQL);
- ``devices``: also each device's interval count and first/last interval times;
- ``labels``: each label seen, with its column (``slot``) in the rollups (``NSLOTS`` at most: a label
  beyond them is kept in the intervals and the CSV but not drawn);
- ``rollup_hour`` / ``rollup_day``: per device per UTC hour / day: intervals, the weight (face
  observations, at least 1 per interval), frames, faces seen and per label the weighted share sum.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
NSLOTS = 32
HOUR_NS = 3600 * 1_000_000_000
DAY_NS = 24 * HOUR_NS
ROLLUPS = {"rollup_hour": HOUR_NS, "rollup_day": DAY_NS}

COLUMNS = ("interval_id", "device", "room", "model", "run_id", "start_utc", "end_utc", "start_unix_ns", "end_unix_ns",
           "duration_s", "frames", "faces_seen", "face_observations", "uncertain_share", "mean_confidence")
SLOTS = tuple(f"s{k}" for k in range(NSLOTS))
ROLLUP_SUMS = ("intervals", "weight", "frames", "faces_seen") + SLOTS

# Version 1, as the first fleet store wrote it (SQLite only): kept to recognise and migrate it, and for the tests.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS intervals (
    interval_id TEXT PRIMARY KEY, device TEXT NOT NULL, room TEXT, model TEXT, run_id TEXT, start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL, start_unix_ns INTEGER NOT NULL, end_unix_ns INTEGER NOT NULL, duration_s REAL,
    frames INTEGER, faces_seen INTEGER, face_observations INTEGER, uncertain_share REAL, mean_confidence REAL,
    share_json TEXT NOT NULL, received_unix_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_device_time ON intervals (device, start_unix_ns);
CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, room TEXT, status TEXT, status_unix_ns INTEGER);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_INTERVALS = """
CREATE TABLE IF NOT EXISTS intervals (
    interval_id TEXT PRIMARY KEY, device TEXT NOT NULL, room TEXT, model TEXT, run_id TEXT, start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL, start_unix_ns {INT} NOT NULL, end_unix_ns {INT} NOT NULL, duration_s {REAL},
    frames {INT}, faces_seen {INT}, face_observations {INT}, uncertain_share {REAL}, mean_confidence {REAL},
    share_json TEXT NOT NULL, received_unix_ns {INT} NOT NULL, seq_run TEXT, seq {INT}
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, room TEXT, status TEXT, status_unix_ns {INT}, intervals {INT} NOT NULL DEFAULT 0,
    first_start_unix_ns {INT}, last_end_unix_ns {INT}
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value {INT} NOT NULL);
"""

# what version 2 adds to a version-1 file (the columns) and to every store (the rest)
V2_COLUMNS = {"intervals": ("seq_run TEXT", "seq {INT}"),
              "devices": ("intervals {INT} NOT NULL DEFAULT 0", "first_start_unix_ns {INT}", "last_end_unix_ns {INT}")}

_V2_TABLES = """
CREATE INDEX IF NOT EXISTS intervals_device_time ON intervals (device, start_unix_ns);
CREATE INDEX IF NOT EXISTS intervals_room_time ON intervals (room, start_unix_ns);
CREATE INDEX IF NOT EXISTS intervals_time_device ON intervals (start_unix_ns, device);
CREATE TABLE IF NOT EXISTS runs (
    device TEXT NOT NULL, seq_run TEXT NOT NULL, max_seq {INT} NOT NULL, received {INT} NOT NULL,
    counted {INT} NOT NULL, PRIMARY KEY (device, seq_run)
);
CREATE TABLE IF NOT EXISTS labels (label TEXT PRIMARY KEY, slot INTEGER UNIQUE);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""

_ROLLUP = """
CREATE TABLE IF NOT EXISTS {name} (
    device TEXT NOT NULL, bucket_unix_ns {INT} NOT NULL, room TEXT, intervals {INT} NOT NULL, weight {REAL} NOT NULL,
    frames {REAL} NOT NULL, faces_seen {REAL} NOT NULL, {slots}, PRIMARY KEY (device, bucket_unix_ns)
);
CREATE INDEX IF NOT EXISTS {name}_bucket ON {name} (bucket_unix_ns);
CREATE INDEX IF NOT EXISTS {name}_room ON {name} (room, bucket_unix_ns);
"""

TYPES = {"sqlite": {"INT": "INTEGER", "REAL": "REAL"}, "postgresql": {"INT": "BIGINT", "REAL": "DOUBLE PRECISION"}}


def typed(sql: str, dialect: str) -> str:
    return sql.format(**TYPES[dialect])


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def v2_statements(dialect: str) -> list[str]:
    """What makes a version-2 store of a store whose intervals/devices/counters tables have every column."""
    out = statements(typed(_V2_TABLES, dialect))
    slots = ", ".join(f"{s} {{REAL}}" for s in SLOTS)
    for name in ROLLUPS:
        out += statements(typed(_ROLLUP.replace("{name}", name).replace("{slots}", slots), dialect))
    return out


def fresh_statements(dialect: str) -> list[str]:
    """A new, empty version-2 store."""
    return statements(typed(_INTERVALS, dialect)) + v2_statements(dialect)
