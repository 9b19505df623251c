"""A fleet store filled with a realistic school year, and the page's render time measured on it.

:func:`prefill`: N devices (one per classroom, rooms in schools of 25), 5-minute intervals over school
hours (08:00-16:00 UTC) on school days (Monday to Friday) from a start date; a run per device per day
(ids ``<device>-<day>-<seq>``), a small share of intervals lost (gaps the page must count); label mixes
drawn per device from a fixed palette with each device's own bias. At 1,000 devices x 180 days that is
~17 million intervals. PostgreSQL: ``COPY`` (psycopg ``cursor.copy``), the secondary indexes dropped
while loading and built after; SQLite: ``executemany``. Rollups, runs, devices and counters are summed
while generating and written per device (the same tables ingest keeps).

:func:`measure_page`: the page and ``/summary.json`` over real HTTP (:class:`~emoedge.fleet.web.FleetWeb`
on 127.0.0.1), K requests each: p50/p95/max milliseconds.

``python -m emoedge.fleet.prefill --db URL|FILE --devices 1000 --days 180 --measure 20``
"""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.request
from collections import Counter
from datetime import date, datetime, timedelta, timezone

from emoedge.core.errors import BadInputError
from emoedge.fleet.backends import executemany
from emoedge.fleet.ingest import INTERVAL_COLS, add_runs, assign_slots, count
from emoedge.fleet.rollups import write_rows
from emoedge.fleet.schema import COLUMNS, NSLOTS, ROLLUPS, v2_statements

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain")
SECONDARY = ("intervals_device_time", "intervals_room_time", "intervals_time_device")
STEP_S, FIRST_H, LAST_H = 300, 8, 16


def palette(n: int = 64, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w = [rng.random() ** 2 for _ in LABELS]
        w[LABELS.index("neutral")] += 1.5
        s = sum(w)
        out.append({k: round(v / s, 4) for k, v in zip(LABELS, w)})
    return out


def school_days(start: date, days: int) -> list[date]:
    out, d = [], start
    while len(out) < days:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _slots_of(day: date) -> list[tuple[int, str, str]]:
    t0 = int(datetime(day.year, day.month, day.day, FIRST_H, tzinfo=timezone.utc).timestamp())
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    return [(t * 10**9, time.strftime(fmt, time.gmtime(t)), time.strftime(fmt, time.gmtime(t + STEP_S - 1)))
            for t in range(t0, t0 + (LAST_H - FIRST_H) * 3600, STEP_S)]


class _DeviceYear:
    """One device's rows and everything derived from them (rollups per palette entry, runs, its device row)."""

    def __init__(self, name: str, room: str, days: list, pal: list, rng: random.Random, drop: float, now_ns: int):
        self.rows, self.ids, self.cells = [], [], {}
        bias = rng.sample(range(len(pal)), 4)
        shares = [json.dumps(p) for p in pal]
        for day, slots in days:
            run = f"{name}-{day:%Y%m%d}"
            for seq, (t, s_utc, e_utc) in enumerate(slots, 1):
                if rng.random() < drop:
                    continue
                p = bias[0] if rng.random() < 0.7 else rng.choice(bias)
                obs = rng.randint(0, 900)
                iid = f"{run}-{seq:05d}"
                self.rows.append((iid, name, room, "ferplus7", run, s_utc, e_utc, t, t + (STEP_S - 1) * 10**9,
                                  float(STEP_S), 4500, obs // 300 + 1, obs, pal[p]["uncertain"], 0.7, shares[p],
                                  now_ns, run, seq))
                self.ids.append({"interval_id": iid, "device": name})
                w = max(1, obs)
                for table, size in ROLLUPS.items():
                    c = self.cells.setdefault((table, t // size * size), [0, 0.0, 0.0, 0.0, Counter()])
                    c[0] += 1
                    c[1] += w
                    c[2] += 4500
                    c[3] += obs // 300 + 1
                    c[4][p] += w

    def rollup_rows(self, table: str, name: str, room: str, pal: list, slots: dict) -> list[tuple]:
        out = []
        for (t, b), (n, w, frames, faces, per) in sorted(self.cells.items()):
            if t == table:
                sums = [None] * NSLOTS
                for label, s in slots.items():
                    if s is not None:
                        sums[s] = sum(pal[p][label] * pw for p, pw in per.items())
                out.append((name, b, room, n, w, frames, faces, *sums))
        return out


def _load(store, db, rows: list[tuple]) -> None:
    if store.dialect == "postgresql":
        with db.cursor() as cur, cur.copy(f"COPY intervals ({', '.join(COLUMNS)}, share_json, received_unix_ns, "
                                          "seq_run, seq) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
    else:
        executemany(db, f"INSERT INTO intervals ({', '.join(INTERVAL_COLS)}) VALUES ({', '.join('?' * len(rows[0]))})",
                    rows)


def prefill(store, devices: int = 1000, days: int = 180, start: date = date(2026, 9, 1), drop: float = 0.001,
            seed: int = 0, progress=None) -> dict:
    """Fill an EMPTY store with a school year at ``devices`` devices; what was written and how long it took."""
    t_start = time.monotonic()
    rng, pal, backend = random.Random(seed), palette(seed=seed), store.backend
    year = [(d, _slots_of(d)) for d in school_days(start, days)]
    db = store.connect()
    written = 0
    try:
        if db.execute("SELECT 1 FROM intervals LIMIT 1").fetchone() is not None:
            raise BadInputError(f"{backend.describe}: prefill writes a school year into an EMPTY fleet store; "
                                "this one holds intervals")
        with backend.transaction(db):
            slots = assign_slots(backend, db, LABELS, {})
            if store.dialect == "postgresql":
                for name in SECONDARY:
                    db.execute(f"DROP INDEX IF EXISTS {name}")
        for k in range(devices):
            name, room = f"box-{k:04d}", f"school-{k // 25:02d}/room-{k % 25:02d}"
            dev = _DeviceYear(name, room, year, pal, rng, drop, time.time_ns())
            with backend.transaction(db):
                _load(store, db, dev.rows)
                for table in ROLLUPS:
                    write_rows(backend, db, table, dev.rollup_rows(table, name, room, pal, slots))
                add_runs(backend, db, dev.ids)
                db.execute(backend.q("INSERT INTO devices (device, room, status, status_unix_ns, intervals, "
                                     "first_start_unix_ns, last_end_unix_ns) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                           (name, room, "offline" if k % 50 == 7 else "online", time.time_ns(), len(dev.rows),
                            dev.rows[0][7], dev.rows[-1][8]))
                count(backend, db, Counter(stored=len(dev.rows)))
            written += len(dev.rows)
            if progress and (k + 1) % 50 == 0:
                progress(k + 1, written, time.monotonic() - t_start)
        t_load = time.monotonic() - t_start
        for sql in v2_statements(backend.dialect):      # the indexes dropped above, then fresh statistics
            db.execute(sql)
        if store.dialect == "postgresql":
            db.execute("ANALYZE")
    finally:
        db.close()
    return {"devices": devices, "school_days": days, "intervals": written, "load_s": round(t_load, 1),
            "total_s": round(time.monotonic() - t_start, 1)}


def _percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50": round(statistics.median(ms), 1), "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
            "max": round(ms[-1], 1)}


def measure_page(store, requests: int = 20, paths: tuple[str, ...] = ("/", "/summary.json")) -> dict:
    """Render time of each path over HTTP on 127.0.0.1 (one warm-up, then ``requests`` timed GETs, the whole
    body read): {path: {"p50", "p95", "max" (ms), "bytes"}, "requests": K}."""
    from emoedge.fleet.web import FleetWeb

    web = FleetWeb(store, "127.0.0.1", 0).start()
    out: dict = {"requests": requests}
    try:
        for path in paths:
            url = f"http://127.0.0.1:{web.port}{path}"
            size = len(urllib.request.urlopen(url, timeout=120).read())
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=120) as r:
                    r.read()
                times.append((time.perf_counter() - t0) * 1000)
            out[path] = {**_percentiles(times), "bytes": size}
    finally:
        web.stop()
    return out


def main(argv=None) -> int:
    import argparse

    from emoedge.fleet.store import open_store

    p = argparse.ArgumentParser(prog="python -m emoedge.fleet.prefill", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True)
    p.add_argument("--db-password-file")
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--days", type=int, default=180)
    p.add_argument("--measure", type=int, default=20, help="timed requests per path (0: none)")
    p.add_argument("--no-fill", action="store_true", help="measure only (the store is filled already)")
    a = p.parse_args(argv)
    store = open_store(a.db, a.db_password_file)
    if not a.no_fill:
        print(json.dumps(prefill(store, a.devices, a.days, progress=lambda k, n, s: print(
            f"{k} devices, {n} intervals, {s:.0f} s", flush=True))), flush=True)
    if a.measure:
        print(json.dumps(measure_page(store, a.measure)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
