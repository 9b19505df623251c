"""``/intervals.csv`` and ``/summary.json`` as streams of byte chunks, written as they are fetched (a
server-side cursor on PostgreSQL, ``fetchmany`` on SQLite): memory stays bounded whatever the number of
rows. CSV cells are neutralised against formula injection (:func:`emoedge.core.csvcells.safe_row`);
the JSON is strict (no NaN or Infinity)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator

from emoedge.core.csvcells import safe_row
from emoedge.fleet.ingest import checked
from emoedge.fleet.payload import MAX_NAME_CHARS
from emoedge.fleet.queries import ROOM_KEY, PageQuery, Span, date_range, ns_day, series, slot_labels
from emoedge.fleet.schema import COLUMNS, SCHEMA_VERSION

CHUNK_ROWS = 1000
CSV_HEAD = ["device", "room", "model", "start_utc", "end_utc", "interval_id", "run_id", "frames", "faces_seen",
            "face_observations", "uncertain_share", "mean_confidence"]


def finite(value):
    """``value`` with every NaN or infinite number replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _js(value) -> str:
    return json.dumps(finite(value), allow_nan=False)


def interval_rows(backend, db, q: PageQuery | None = None, chunk: int | None = None) -> Iterator[dict]:
    """Every valid interval (of the query's date range, if any), oldest first, streamed."""
    where, params = "", ()
    if q is not None and (q.date_from or q.date_to):
        lo, hi = date_range(backend, db, q)
        where, params = " WHERE start_unix_ns >= ? AND start_unix_ns < ?", (lo, hi)
    sql = f"SELECT {', '.join(COLUMNS)}, share_json FROM intervals{where} ORDER BY start_unix_ns, device"
    for raw in backend.stream(db, sql, params, chunk or CHUNK_ROWS):
        row = checked(raw)
        if row is not None:
            yield row


def csv_chunks(backend, db, q: PageQuery | None = None, counter: list | None = None) -> Iterator[bytes]:
    """The intervals as CSV (one share column per label), ``CHUNK_ROWS`` rows a chunk; ``counter[0]``: rows."""
    labels = sorted(r[0] for r in db.execute("SELECT label FROM labels").fetchall())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(safe_row(CSV_HEAD + [f"share_{k}" for k in labels]))
    n = 0
    for r in interval_rows(backend, db, q):
        w.writerow(safe_row([r[k] for k in CSV_HEAD] + [f"{r['share'].get(k, 0.0):.4f}" for k in labels]))
        n += 1
        if n % CHUNK_ROWS == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    if counter is not None:
        counter[0] = n
    yield buf.getvalue().encode()


def summary_chunks(backend, db, q: PageQuery | None = None) -> Iterator[bytes]:
    """``/summary.json``: the range, counters, the fleet's label shares per bucket and over the range, each
    room's over the range, then every device and its sequence gaps (streamed)."""
    q = q or PageQuery()
    span = Span.of(*date_range(backend, db, q))
    slots = slot_labels(db)
    fleet, tot = series(backend, db, span, slots, "'fleet'")
    n, share = tot.get("fleet", (0, {}))
    _, rooms = series(backend, db, Span(span.lo, span.hi, span.table, span.hi - span.lo), slots, ROOM_KEY)
    counters = {k: int(v) for k, v in db.execute("SELECT name, value FROM counters")}
    head = {"schema_version": SCHEMA_VERSION, "from": str(ns_day(span.lo)), "to": str(ns_day(span.hi - 1)),
            "from_unix_ns": span.lo, "to_unix_ns": span.hi, "bucket_s": span.bucket // 10**9,
            "intervals_in_range": n, "counters": counters, "fleet_share": share,
            "fleet": [{"start_unix_ns": t, "share": s} for t, s in fleet.get("fleet", ())],
            "rooms": {r: {"intervals": k, "share": s} for r, (k, s) in rooms.items()}}
    yield _js(head)[:-1].encode() + b', "devices": {'
    sql = ("SELECT device, room, status, status_unix_ns, intervals, first_start_unix_ns, last_end_unix_ns "
           "FROM devices ORDER BY device")
    yield from _object(backend.stream(db, sql, (), CHUNK_ROWS), lambda r: {
        "room": r[1], "status": r[2], "status_unix_ns": r[3], "intervals": r[4], "first_start_unix_ns": r[5],
        "last_end_unix_ns": r[6]})
    yield b'}, "sequence": {'
    sql = "SELECT device, COUNT(*), SUM(received), SUM(max_seq - counted) FROM runs GROUP BY device ORDER BY device"
    yield from _object(backend.stream(db, sql, (), CHUNK_ROWS), lambda r: {"runs": int(r[1]), "received": int(r[2]),
                                                           "missing": int(r[3])})
    yield b"}}"


def _object(rows, value) -> Iterator[bytes]:
    """``"key": value, ...`` of rows keyed by their first column, a chunk per ``CHUNK_ROWS``."""
    parts: list[str] = []
    first = True
    for r in rows:
        if not isinstance(r[0], str) or len(r[0]) > MAX_NAME_CHARS:
            continue
        parts.append(("" if first else ", ") + f"{_js(r[0])}: {_js(value(r))}")
        first = False
        if len(parts) >= CHUNK_ROWS:
            yield "".join(parts).encode()
            parts = []
    if parts:
        yield "".join(parts).encode()
