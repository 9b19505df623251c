"""The fleet page over HTTP (emoedge.fleet.web, .queries, .exports) on SQLite and PostgreSQL: paging and date ranges
aggregated in the database, hostile query strings answered 400, /intervals.csv and /summary.json streamed in chunks
(chunked transfer encoding), an empty store's page."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pg_server as pg
import pytest
from fleet_data import T0, good, raw

from emoedge.fleet import FleetStore, FleetWeb, PageQuery, QueryError, exports, parse_query, render_page
from emoedge.fleet.queries import bucket_of, day_ns
from emoedge.fleet.schema import DAY_NS, HOUR_NS

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each
DAY0 = T0 // DAY_NS * DAY_NS                              # 2026-09-21 00:00 UTC


def _days_store(spec, devices=7, days=5, per_day=3) -> FleetStore:
    """``devices`` devices in 3 rooms, ``per_day`` intervals a day (hours 8, 9, 10) over ``days`` days."""
    store = FleetStore(spec)
    db = store.connect()
    msgs = []
    for i in range(devices):
        d = f"dev{i}"
        for day in range(days):
            for h in range(per_day):
                k = day * per_day + h + 1
                t = DAY0 + day * DAY_NS + (8 + h) * HOUR_NS
                msgs.append((f"s/{d}/intervals", raw(good(d, k, room=f"room{i % 3}", start_unix_ns=t,
                                                         end_unix_ns=t + 60_000_000_000))))
    store.ingest_many(db, msgs)
    db.close()
    return store


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_paging_and_date_ranges_are_aggregated_in_the_database(store_spec):
    store = _days_store(store_spec)
    v = store.view(PageQuery(per_page=3, page=3))
    assert v.devices_total == 7 and v.pages == 3 and [d.device for d in v.devices] == ["dev6"]
    assert v.intervals_in_range == 7 * 15 and v.rollup == "rollup_day" and v.bucket_ns == DAY_NS
    assert len(v.rooms["room0"]) == 5                                   # one point a day
    one = store.view(parse_query("from=2026-09-22&to=2026-09-22&per_page=2"))
    assert one.intervals_in_range == 7 * 3 and one.rollup == "rollup_hour" and one.bucket_ns == HOUR_NS
    assert [len(d.recent) for d in one.devices] == [3, 3] and one.devices[0].intervals_in_range == 3
    assert [t for t, _ in one.rooms["room1"]] == [DAY0 + DAY_NS + h * HOUR_NS for h in (8, 9, 10)]
    page = render_page(one)
    assert "devices page 1 of 4" in page
    assert 'href="?from=2026-09-22&amp;to=2026-09-22&amp;page=2&amp;per_page=2"' in page
    assert "21 intervals from 2026-09-22 to 2026-09-22" in page
    none = store.view(parse_query("from=2030-01-01"))
    assert none.intervals_in_range == 0 and "no intervals yet" in render_page(none)


def test_the_bucket_follows_the_range():
    assert bucket_of(DAY_NS) == ("rollup_hour", HOUR_NS)
    assert bucket_of(3 * DAY_NS) == ("rollup_hour", HOUR_NS)
    assert bucket_of(10 * DAY_NS) == ("rollup_day", DAY_NS)
    assert bucket_of(365 * DAY_NS) == ("rollup_day", 7 * DAY_NS)        # at most ~60 points
    assert day_ns(parse_query("from=2026-09-21").date_from) == DAY0


@pytest.mark.parametrize("qs", ["page=0", "page=-1", "page=x", "page=99999999999", "per_page=501", "per_page=",
                                "from=2026-13-01", "from=2026-02-30", "from=20260101", "from=2026-1-1",
                                "from=2026-09-22&to=2026-09-21", "to=%00", "from=2026-09-21&from=2026-09-22",
                                "evil=1", "page=1&" * 100, "a" * 600, "last=0", "last=100000", "page=%F0%9F%92%A9"])
def test_hostile_query_strings_are_refused(qs):
    with pytest.raises(QueryError):
        parse_query(qs)


def test_http_400_for_hostile_queries_404_elsewhere_and_the_empty_page(store_spec):
    store = FleetStore(store_spec)
    web = FleetWeb(store, "127.0.0.1", 0).start()
    try:
        status, body = _get(web.port, "/?page=0")
        assert status == 400 and b"page" in body
        status, body = _get(web.port, "/summary.json?from=2026-02-30")
        assert status == 400 and b"from" in body
        assert _get(web.port, "/intervals.csv?to=%FF%FE")[0] == 400
        assert _get(web.port, "/nothing")[0] == 404
        assert _get(web.port, "/" + "a" * 3000)[0] == 414
        status, body = _get(web.port, "/")
        assert status == 200 and b"0 devices, 0 intervals" in body and b"<script" not in body
        status, body = _get(web.port, "/summary.json")
        assert status == 200 and json.loads(body)["devices"] == {} and json.loads(body)["sequence"] == {}
        assert _get(web.port, "/intervals.csv")[1].count(b"\r\n") == 1
    finally:
        web.stop()


def _raw_chunks(port: int, path: str) -> tuple[bytes, list[int]]:
    """The response's head and the sizes of its chunks, read off the socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    sizes = []
    while body:
        line, _, body = body.partition(b"\r\n")
        n = int(line, 16)
        sizes.append(n)
        body = body[n + 2:]
        if n == 0:
            break
    return head, sizes


def test_csv_and_json_stream_in_chunks_as_they_are_fetched(store_spec, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    store = _days_store(store_spec, devices=30, days=1, per_day=3)
    fetched = []
    stream = store.backend.stream
    monkeypatch.setattr(store.backend, "stream", lambda db, sql, params=(), chunk=2000: (
        fetched.append(chunk) or stream(db, sql, params, chunk)))
    web = FleetWeb(store, "127.0.0.1", 0).start()
    try:
        head, sizes = _raw_chunks(web.port, "/intervals.csv")
        assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
        assert len(sizes) >= 9 and sizes[-1] == 0                          # 90 rows, 10 a chunk: written as fetched
        head, sizes = _raw_chunks(web.port, "/summary.json")
        assert b"Transfer-Encoding: chunked" in head and len(sizes) >= 6   # head, devices in 3 chunks, sequence ...
        status, body = _get(web.port, "/summary.json?from=2026-09-21&to=2026-09-21")
        s = json.loads(body)
        assert len(s["devices"]) == 30 and s["sequence"]["dev3"] == {"runs": 1, "received": 3, "missing": 0}
        assert s["intervals_in_range"] == 90 and s["bucket_s"] == 3600
        assert len(_get(web.port, "/intervals.csv?from=2026-09-21")[1].splitlines()) == 91
    finally:
        web.stop()
    assert fetched and all(c == exports.CHUNK_ROWS for c in fetched)   # fetched 10 rows at a time, never all
