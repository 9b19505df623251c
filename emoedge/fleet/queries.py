"""What the page shows, aggregated in the database: label shares per room in time buckets (from the
rollups; the bucket from the date range: hours up to 3 days, days beyond, at most ~60 points), one page
of devices (the devices table, their runs' gaps, their last N intervals by the (device, start) index),
the counters. The cost depends on the date range, the rooms and ``per_page``, not on the number of
stored intervals. Query strings are hostile: :func:`parse_query` refuses anything unexpected
(:class:`QueryError`, HTTP 400)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from urllib.parse import parse_qsl

from emoedge.core.errors import BadInputError
from emoedge.fleet.page import mean_share
from emoedge.fleet.payload import MAX_LABELS, MAX_NAME_CHARS
from emoedge.fleet.schema import DAY_NS, HOUR_NS

MAX_QUERY_CHARS = 512
MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000
MAX_LAST = 500
MAX_POINTS_HOURS, MAX_POINTS_DAYS = 72, 60
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class QueryError(BadInputError):
    """A query string the page refuses (HTTP 400); the message names the parameter."""


@dataclass(frozen=True)
class PageQuery:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (UTC days, both included), ``page`` (from 1), ``per_page``, ``last``
    (each device's last N intervals in the range: its recent mix, uncertain share and drift)."""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1
    per_page: int = 50
    last: int = 10

    def params(self, **change) -> str:
        """This query as a query string (for links), with ``change`` applied."""
        v = {"from": self.date_from, "to": self.date_to, "page": self.page, "per_page": self.per_page,
             "last": self.last if self.last != 10 else None, **change}
        return "&".join(f"{k}={x}" for k, x in v.items() if x is not None)


def _int(key: str, text: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not lo <= int(text) <= hi:
        raise QueryError(f"?{key}= must be a whole number from {lo} to {hi}, not {text[:40]!r}")
    return int(text)


def _date(key: str, text: str) -> date:
    try:
        if DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise QueryError(f"?{key}= must be a date YYYY-MM-DD, not {text[:40]!r}")


def parse_query(qs: str) -> PageQuery:
    """The page's query string, each value checked (``QueryError`` naming the parameter)."""
    if len(qs) > MAX_QUERY_CHARS:
        raise QueryError(f"query string over {MAX_QUERY_CHARS} characters")
    try:
        pairs = parse_qsl(qs, keep_blank_values=True, strict_parsing=bool(qs), max_num_fields=8)
    except ValueError as exc:
        raise QueryError(f"bad query string: {str(exc)[:80]}") from None
    keys = [k for k, _ in pairs]
    unknown = sorted({k for k in keys if k not in ("from", "to", "page", "per_page", "last")})
    if unknown or len(keys) != len(set(keys)):
        raise QueryError(f"unknown or repeated query parameter(s): {', '.join(unknown or keys)[:80]}; "
                         "expected from, to, page, per_page, last (once each)")
    v = dict(pairs)
    q = PageQuery(_date("from", v["from"]) if "from" in v else None, _date("to", v["to"]) if "to" in v else None,
                  _int("page", v["page"], 1, MAX_PAGE) if "page" in v else 1,
                  _int("per_page", v["per_page"], 1, MAX_PER_PAGE) if "per_page" in v else 50,
                  _int("last", v["last"], 1, MAX_LAST) if "last" in v else 10)
    if q.date_from and q.date_to and q.date_to < q.date_from:
        raise QueryError(f"?to={q.date_to} is before ?from={q.date_from}")
    return q


def day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def ns_day(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).date()


@dataclass(frozen=True)
class DeviceView:
    device: str
    room: str | None
    status: str | None
    status_unix_ns: int | None
    last_end_unix_ns: int | None
    intervals: int                       # stored in all
    intervals_in_range: int
    faces_seen_in_range: int
    runs: int
    received: int
    missing: int
    series: tuple = ()                   # (bucket start, share) over the range, from the rollup
    recent: tuple = ()                   # the last N intervals in the range, oldest first: (start_unix_ns, share)
    recent_share: dict = field(default_factory=dict)   # their mix, weighted by face observations


@dataclass(frozen=True)
class PageView:
    query: PageQuery
    from_unix_ns: int
    to_unix_ns: int                      # exclusive
    bucket_ns: int
    rollup: str
    devices_total: int
    intervals_in_range: int
    missing_total: int
    counters: dict
    labels: tuple
    fleet_share: dict
    fleet: tuple                         # (bucket start, share) of the whole fleet
    rooms: dict                          # room -> [(bucket start, share)], the rooms of this page's devices
    devices: tuple                       # DeviceView of this page

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.devices_total / self.query.per_page))


def slot_labels(db) -> dict[str, int]:
    return {label: slot for label, slot in db.execute("SELECT label, slot FROM labels WHERE slot IS NOT NULL")}


def date_range(backend, db, q: PageQuery) -> tuple[int, int]:
    """[from, to) in ns: the query's days, else the stored days."""
    lo = hi = None
    if q.date_from is None or q.date_to is None:
        lo, hi = db.execute("SELECT MIN(bucket_unix_ns), MAX(bucket_unix_ns) FROM rollup_day").fetchone()
    start = day_ns(q.date_from) if q.date_from else (lo if lo is not None else day_ns(q.date_to or date.today()))
    end = day_ns(q.date_to) + DAY_NS if q.date_to else (hi + DAY_NS if hi is not None else start + DAY_NS)
    return start, max(end, start + DAY_NS)


def bucket_of(span_ns: int) -> tuple[str, int]:
    """The rollup and the bucket for a date range: hours (at most 72 points) up to 3 days, else days (60)."""
    if span_ns <= 3 * DAY_NS:
        return "rollup_hour", HOUR_NS * max(1, math.ceil(span_ns / HOUR_NS / MAX_POINTS_HOURS))
    return "rollup_day", DAY_NS * max(1, math.ceil(span_ns / DAY_NS / MAX_POINTS_DAYS))


@dataclass(frozen=True)
class Span:
    """A date range [lo, hi) in ns, the rollup to read and the bucket width."""
    lo: int
    hi: int
    table: str
    bucket: int

    @classmethod
    def of(cls, lo: int, hi: int) -> Span:
        return cls(lo, hi, *bucket_of(hi - lo))


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def series(backend, db, span: Span, slots: dict[str, int], key: str, where: str = "", params: tuple = ()):
    """Label shares per ``key`` (an SQL expression) per bucket, from the rollup, and the totals per key:
    ({key: [(bucket start, share)]}, {key: (intervals, share over the range)})."""
    labels = sorted(slots)
    sums = "".join(f", SUM(s{slots[k]})" for k in labels)
    sql = (f"SELECT {key}, (bucket_unix_ns - ?) / ?, SUM(intervals), SUM(weight){sums} FROM {span.table} "
           f"WHERE bucket_unix_ns >= ? AND bucket_unix_ns < ?{where} GROUP BY 1, 2 ORDER BY 1, 2")
    out: dict[str, list] = {}
    tot: dict[str, list] = {}
    for k, b, n, w, *s in db.execute(backend.q(sql), (span.lo, span.bucket, span.lo, span.hi, *params)):
        w = float(w or 0.0)
        out.setdefault(k, []).append((span.lo + int(b) * span.bucket,
                                      {lab: v / w for lab, v in zip(labels, s) if v is not None} if w else {}))
        t = tot.setdefault(k, [0, 0.0, dict.fromkeys(labels, 0.0)])
        t[0], t[1] = t[0] + int(n), t[1] + w
        for lab, v in zip(labels, s):
            t[2][lab] += v or 0.0
    return out, {k: (n, {lab: v / w for lab, v in sm.items()} if w else {}) for k, (n, w, sm) in tot.items()}


ROOM_KEY = "COALESCE(room, '(no room)')"


def room_filter(rooms) -> tuple[str, tuple]:
    named = sorted(r for r in rooms if r != "(no room)")
    parts = [f"room IN ({_marks(named)})"] if named else []
    if "(no room)" in rooms:
        parts.append("room IS NULL")
    return (f" AND ({' OR '.join(parts)})", tuple(named)) if parts else (" AND 1 = 0", ())


def share_of(text) -> dict[str, float] | None:
    """A stored ``share_json`` checked the cheap way (label -> finite number in 0..1), or None."""
    try:
        share = json.loads(text, parse_constant=lambda c: None)
    except (TypeError, ValueError):
        return None
    if not isinstance(share, dict) or not 0 < len(share) <= MAX_LABELS:
        return None
    ok = all(isinstance(k, str) and len(k) <= MAX_NAME_CHARS and type(v) in (int, float) and 0 <= v <= 1
             for k, v in share.items())
    return share if ok else None


def recent(backend, db, device: str, lo: int, hi: int, last: int) -> list[dict]:
    """The device's last ``last`` intervals in [lo, hi), oldest first: start, face observations, share."""
    raw = db.execute(backend.q("SELECT start_unix_ns, face_observations, share_json FROM intervals WHERE device = ? "
                               "AND start_unix_ns >= ? AND start_unix_ns < ? ORDER BY start_unix_ns DESC LIMIT ?"),
                     (device, lo, hi, last)).fetchall()
    out = []
    for t, obs, text in reversed(raw):
        share = share_of(text)
        if share is not None and type(t) is int and (obs is None or type(obs) is int):
            out.append({"start_unix_ns": t, "face_observations": obs, "share": share})
    return out


def device_views(backend, db, q: PageQuery, span: Span, slots: dict[str, int]) -> list[DeviceView]:
    rows = db.execute(backend.q("SELECT device, room, status, status_unix_ns, intervals, last_end_unix_ns FROM devices "
                                "ORDER BY device LIMIT ? OFFSET ?"), (q.per_page, (q.page - 1) * q.per_page)).fetchall()
    rows = [r for r in rows if isinstance(r[0], str) and len(r[0]) <= MAX_NAME_CHARS]
    names = [r[0] for r in rows]
    if not names:
        return []
    runs = {d: (n, rec, miss) for d, n, rec, miss in db.execute(backend.q(
        f"SELECT device, COUNT(*), SUM(received), SUM(max_seq - counted) FROM runs WHERE device IN ({_marks(names)}) "
        "GROUP BY device"), names)}
    faces = dict(db.execute(backend.q(
        f"SELECT device, SUM(faces_seen) FROM {span.table} WHERE device IN ({_marks(names)}) "
        "AND bucket_unix_ns >= ? AND bucket_unix_ns < ? GROUP BY device"), (*names, span.lo, span.hi)).fetchall())
    per, tot = series(backend, db, span, slots, "device", f" AND device IN ({_marks(names)})", tuple(names))
    out = []
    for d, room, status, status_ns, count, last_end in rows:
        rs = recent(backend, db, d, span.lo, span.hi, q.last)
        n_runs, received, missing = runs.get(d, (0, 0, 0))
        out.append(DeviceView(d, room, status, status_ns, last_end, int(count or 0), tot.get(d, (0, {}))[0],
                              int(faces.get(d) or 0), int(n_runs), int(received or 0), int(missing or 0),
                              tuple(per.get(d, ())), tuple((r["start_unix_ns"], r["share"]) for r in rs),
                              mean_share(rs)))
    return out


def build_view(backend, db, q: PageQuery | None = None) -> PageView:
    """The page's data for ``q`` (defaults: every stored day, the first 50 devices)."""
    q = q or PageQuery()
    span = Span.of(*date_range(backend, db, q))
    slots = slot_labels(db)
    fleet, fleet_tot = series(backend, db, span, slots, "'fleet'")
    n, share = fleet_tot.get("fleet", (0, {}))
    devices = device_views(backend, db, q, span, slots)
    where, params = room_filter({d.room or "(no room)" for d in devices})
    rooms, _ = series(backend, db, span, slots, ROOM_KEY, where, params)
    labels = sorted(set(share) | {k for d in devices for _, s in d.recent for k in s},
                    key=lambda k: (k == "uncertain", k))
    total = db.execute("SELECT COUNT(*) FROM devices").fetchone()[0]
    missing = db.execute("SELECT SUM(max_seq - counted) FROM runs").fetchone()[0]
    counters = {k: int(v) for k, v in db.execute("SELECT name, value FROM counters")}
    return PageView(q, span.lo, span.hi, span.bucket, span.table, int(total), n, int(missing or 0), counters,
                    tuple(labels), share, tuple(fleet.get("fleet", ())), rooms, tuple(devices))
