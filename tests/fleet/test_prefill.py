"""A school year in a fleet store (emoedge.fleet.prefill), small here (the 17-million-row run is a benchmark): what it
writes agrees with what ingest keeps (rollups, runs, devices, counters), and measure_page times the page over HTTP."""

from __future__ import annotations

import json
from datetime import date

import pg_server as pg
import pytest

from emoedge.core.errors import BadInputError
from emoedge.fleet import FleetStore, render_page
from emoedge.fleet.prefill import measure_page, prefill, school_days
from emoedge.fleet.web import summary_json

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each


def test_school_days_skip_weekends():
    days = school_days(date(2026, 9, 4), 3)                              # a Friday
    assert days == [date(2026, 9, 4), date(2026, 9, 7), date(2026, 9, 8)]


def test_prefill_writes_what_ingest_would_keep(store_spec):
    store = FleetStore(store_spec)
    out = prefill(store, devices=6, days=4, drop=0.02, seed=1)
    assert out["devices"] == 6 and 0.9 * 6 * 4 * 96 < out["intervals"] < 6 * 4 * 96
    assert len(store.rows()) == out["intervals"]
    gaps = store.sequence()
    assert gaps == store.gaps_sql() and sum(g["runs"] for g in gaps.values()) == 6 * 4
    assert sum(g["received"] + g["missing"] for g in gaps.values()) <= 6 * 4 * 96     # a lost last one is not seen
    s = json.loads(summary_json(store))
    assert s["intervals_in_range"] == out["intervals"] == s["counters"]["stored"]
    assert abs(sum(s["fleet_share"].values()) - 1) < 1e-3 and len(s["rooms"]) == 6
    assert sum(d["intervals"] for d in s["devices"].values()) == out["intervals"]
    page = render_page(store.view())
    assert f"6 devices, {out['intervals']} intervals" in page and "<script" not in page
    with pytest.raises(BadInputError, match="EMPTY"):
        prefill(store, devices=1, days=1)


def test_measure_page_times_the_page_and_the_json(store_spec):
    store = FleetStore(store_spec)
    prefill(store, devices=3, days=2)
    m = measure_page(store, requests=3)
    assert m["requests"] == 3 and set(m) == {"requests", "/", "/summary.json"}
    for path in ("/", "/summary.json"):
        assert 0 < m[path]["p50"] <= m[path]["p95"] <= m[path]["max"] and m[path]["bytes"] > 1000
