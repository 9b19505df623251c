"""Storing a batch of MQTT messages in one transaction, the same SQL on SQLite and PostgreSQL.

Each message is checked first (:mod:`emoedge.fleet.payload`; also no NUL character, which PostgreSQL's
text cannot hold), so nothing invalid is written. Intervals are inserted with ``ON CONFLICT DO NOTHING``
keyed by ``interval_id``: with several writers on one database each interval is stored exactly once,
and only the writer that stored it adds it to the devices, runs, rollups and counters (all upsert
increments). A message whose id was already there is a ``duplicate`` (same content) or a ``conflict``
(other content; the first copy kept). Tables are written in one order (labels, intervals, devices,
runs, rollups, counters), each in key order, so concurrent writers do not deadlock.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

from emoedge.fleet.payload import MAX_NAME_CHARS, PayloadError, interval_fields, parse_interval
from emoedge.fleet.rollups import RollupSums
from emoedge.fleet.schema import COLUMNS, NSLOTS

log = logging.getLogger("emoedge.fleet.store")

STATUSES = ("online", "offline")
INTERVAL_COLS = (*COLUMNS, "share_json", "received_unix_ns", "seq_run", "seq")
INTERVAL_TYPES = "tttttttiiriiirrtiti"           # t text, i bigint, r double (for PostgreSQL's arrays)


def split_id(interval_id: str) -> tuple[str, int] | None:
    """``<run>-<seq>`` of an interval id (seq: at most 9 digits), or None."""
    run, _, seq = interval_id.rpartition("-")
    return (run, int(seq)) if run and seq.isascii() and seq.isdigit() and len(seq) <= 9 else None


def _no_nul(row: dict) -> dict:
    if any("\x00" in v for v in row.values() if isinstance(v, str)) or any("\x00" in k for k in row["share"]):
        raise PayloadError("a text field holds a NUL character")
    return row


def _parse(topic: str, payload: bytes) -> tuple[str, object]:
    """('status', (device, status)) or ('interval', row); PayloadError for anything else."""
    parts = topic.split("/")
    device = parts[-2] if len(parts) >= 3 else ""
    if parts[-1] == "status" and device:
        status = payload.decode(errors="replace")
        if len(device) > MAX_NAME_CHARS or "\x00" in device or status not in STATUSES:
            raise PayloadError(f"a status must be online or offline from a device id of at most {MAX_NAME_CHARS} "
                               f"characters")
        return "status", (device, status)
    return "interval", _no_nul(parse_interval(device, payload))


def assign_slots(backend, db, labels, cache: dict[str, int | None]) -> dict[str, int | None]:
    """Each label's rollup slot, registering new labels (the next free slot; None past ``NSLOTS``)."""
    missing = sorted(set(labels) - set(cache))
    found: dict[str, int | None] = {}
    take = backend.q("INSERT INTO labels (label, slot) SELECT ?, n FROM (SELECT COALESCE(MAX(slot) + 1, 0) AS n "
                     "FROM labels) AS t WHERE n < ? ON CONFLICT DO NOTHING")
    for label in missing:
        for _ in range(NSLOTS + 1):      # another writer may take the same slot first: then the next one
            row = db.execute(backend.q("SELECT slot FROM labels WHERE label = ?"), (label,)).fetchone()
            if row is not None:
                found[label] = row[0]
                break
            if db.execute(take, (label, NSLOTS)).rowcount == 0 and db.execute(
                    backend.q("SELECT COUNT(slot) FROM labels"), ()).fetchone()[0] >= NSLOTS:
                db.execute(backend.q("INSERT INTO labels (label, slot) VALUES (?, NULL) ON CONFLICT DO NOTHING"),
                           (label,))
        else:
            raise RuntimeError(f"fleet store: no slot for label {label!r}")
    return {**cache, **found}


def checked(raw: tuple) -> dict | None:
    """A stored row (COLUMNS then share_json) with its fields checked again, or None (an older version's row
    that does not pass)."""
    try:
        return interval_fields({**dict(zip(COLUMNS, raw)), "share": json.loads(raw[len(COLUMNS)])})
    except (PayloadError, ValueError, TypeError):
        return None


def _same(old: tuple, row: dict) -> bool:
    try:
        return list(old[:len(COLUMNS)]) == [row[k] for k in COLUMNS] and json.loads(old[-1]) == row["share"]
    except ValueError:
        return False


def _stored_rows(backend, db, ids: list[str]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        marks = ", ".join("?" * len(part))
        out.update((r[0], r) for r in db.execute(backend.q(
            f"SELECT {', '.join(COLUMNS)}, share_json FROM intervals WHERE interval_id IN ({marks})"), part))
    return out


def add_devices(backend, db, stored: list[dict], statuses: dict[str, str]) -> None:
    per: dict[str, list] = {}
    for r in stored:
        d = per.setdefault(r["device"], [None, 0, r["start_unix_ns"], r["end_unix_ns"]])
        d[0] = r["room"] if r["room"] is not None else d[0]
        d[1] += 1
        d[2], d[3] = min(d[2], r["start_unix_ns"]), max(d[3], r["end_unix_ns"])
    g, lo = backend.greatest, backend.least

    def either(fn: str, col: str) -> str:      # fn of the stored and the new value, either one when the other is NULL
        return f"{fn}(COALESCE(devices.{col}, excluded.{col}), COALESCE(excluded.{col}, devices.{col}))"

    tail = ("ON CONFLICT (device) DO UPDATE SET room = COALESCE(excluded.room, devices.room), "
            "intervals = devices.intervals + excluded.intervals, "
            f"first_start_unix_ns = {either(lo, 'first_start_unix_ns')}, "
            f"last_end_unix_ns = {either(g, 'last_end_unix_ns')}, status = COALESCE(excluded.status, devices.status), "
            "status_unix_ns = COALESCE(excluded.status_unix_ns, devices.status_unix_ns)")
    now = time.time_ns()
    rows = [(d, *per.get(d, (None, 0, None, None)), statuses.get(d), now if d in statuses else None)
            for d in sorted(set(per) | set(statuses))]
    backend.upsert(db, "devices", ("device", "room", "intervals", "first_start_unix_ns", "last_end_unix_ns", "status",
                                   "status_unix_ns"), "ttiiiti", rows, tail)     # one row per device, in key order


def add_runs(backend, db, stored: list[dict]) -> None:
    per: dict[tuple[str, str], list[int]] = {}
    for r in stored:
        parts = split_id(r["interval_id"])
        if parts:
            d = per.setdefault((r["device"], parts[0]), [0, 0, 0])
            d[0], d[1], d[2] = max(d[0], parts[1]), d[1] + 1, d[2] + (parts[1] >= 1)
    tail = (f"ON CONFLICT (device, seq_run) DO UPDATE SET max_seq = {backend.greatest}(runs.max_seq, "
            "excluded.max_seq), received = runs.received + excluded.received, "
            "counted = runs.counted + excluded.counted")
    backend.upsert(db, "runs", ("device", "seq_run", "max_seq", "received", "counted"), "ttiii",
                   [(d, run, *v) for (d, run), v in sorted(per.items())], tail)


def count(backend, db, counts: Counter) -> None:
    backend.upsert(db, "counters", ("name", "value"), "ti", sorted((k, v) for k, v in counts.items() if v),
                   "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value")


def _as_tuple(row: dict, now_ns: int) -> tuple:
    """A row to insert: received now, or when the store it is copied from received it (``received_unix_ns``)."""
    parts = split_id(row["interval_id"]) or (None, None)
    return (*[row[k] for k in COLUMNS], json.dumps(row["share"]), row.get("received_unix_ns", now_ns), *parts)


def _classify(messages) -> tuple[list, list[dict], dict[str, str]]:
    kinds: list = []
    rows, statuses = [], {}
    for topic, payload in messages:
        try:
            kind, value = _parse(topic, payload)
        except PayloadError as exc:
            log.warning("fleet: %.120s: message refused (%s): %r", topic, exc, payload[:120])
            kinds.append("rejected")
            continue
        if kind == "status":
            statuses[value[0]] = value[1]
            kinds.append("status")
        else:
            kinds.append(value)
            rows.append(value)
    return kinds, rows, statuses


def ingest_batch(backend, db, messages: list[tuple[str, bytes]], slot_cache: dict) -> tuple[list[str], dict]:
    """Messages stored in one transaction: the outcome of each, and the label slots now known."""
    kinds, rows, statuses = _classify(messages)
    return store_rows(backend, db, kinds, rows, statuses, slot_cache)


def store_rows(backend, db, kinds: list, rows: list[dict], statuses: dict[str, str],
               slot_cache: dict) -> tuple[list[str], dict]:
    """Checked rows (``kinds``: each row, or an outcome already decided) and statuses stored in one transaction:
    the outcome of each, and the label slots now known."""
    with backend.transaction(db):
        slots = assign_slots(backend, db, {k for r in rows for k in r["share"]}, slot_cache)
        first = {}
        for r in rows:
            first.setdefault(r["interval_id"], r)
        now = time.time_ns()
        new = backend.insert_new(db, "intervals", INTERVAL_COLS, INTERVAL_TYPES,
                                 [_as_tuple(first[i], now) for i in sorted(first)])
        old = _stored_rows(backend, db, sorted({r["interval_id"] for r in rows} - new))
        stored, taken = [], set()
        for n, k in enumerate(kinds):
            if isinstance(k, dict):
                i = k["interval_id"]
                if i in new and i not in taken and first[i] is k:
                    taken.add(i)
                    stored.append(k)
                    kinds[n] = "stored"
                else:
                    kinds[n] = "duplicate" if _same(old[i] if i in old else _as_tuple(first[i], 0)[:-3], k) \
                        else "conflict"
                    if kinds[n] == "conflict":
                        log.warning("fleet: interval %.200s from %s: other content under a stored id; the first "
                                    "copy kept", i, k["device"])
        add_devices(backend, db, stored, statuses)
        add_runs(backend, db, stored)
        sums = RollupSums()
        for r in stored:
            sums.add(r, slots)
        sums.write(backend, db)
        count(backend, db, Counter(k for k in kinds if k != "status"))
    return kinds, slots
