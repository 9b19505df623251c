"""Fleet payloads for the tests: interval summaries of a device, a filled store, good and hostile MQTT messages, and
the check that everything still serves."""

from __future__ import annotations

import json

import pytest

from emoedge.edge.outputs.mqtt import interval_payload
from emoedge.edge.outputs.records import IntervalSummary
from emoedge.fleet import FleetStore, render_page
from emoedge.fleet.web import summary_json

T0 = 1_790_000_000_000_000_000


def summary(dev: str, k: int, share: dict[str, float] | None = None) -> IntervalSummary:
    t = T0 + k * 60_000_000_000
    return IntervalSummary(f"{dev}-run-{k:05d}", f"{dev}-run", t, t + 59_000_000_000, 60.0, 900, 2, 800,
                           share or {"happy": 0.5, "neutral": 0.4, "uncertain": 0.1}, 0.7)


def fill(store: FleetStore, devices=("a1", "a2", "b1"), n: int = 20) -> None:
    db = store.connect()
    for d in devices:
        for k in range(n):
            sad = 0.6 if d == "b1" and k >= n // 2 else 0.1           # b1 drifts half way
            s = summary(d, k, {"happy": 0.7 - sad, "sad": sad, "neutral": 0.2, "uncertain": 0.1})
            p = interval_payload(s, d, "fast", room="room-a" if d.startswith("a") else "room-b")
            store.ingest(db, f"school/{d}/intervals", json.dumps(p).encode())
        store.ingest(db, f"school/{d}/status", b"offline" if d == "a2" else b"online")
    db.close()


def good(dev: str = "d1", k: int = 1, **change) -> dict:
    return {**interval_payload(summary(dev, k), dev, "fast", "room-a"), **change}


def raw(obj) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()

HOSTILE = {
    "null": b"null", "number": b"42", "string": b'"hello"', "list": b"[1, 2]", "not json": b"{not json",
    "not utf-8": b'{"a": "\xff\xfe"}', "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "oversized": raw(good(room="r" * 100_000)),
    "start NaN": raw(good()).replace(b'"start_unix_ns": 1790000060000000000', b'"start_unix_ns": NaN'),
    "start Infinity": raw(good()).replace(b'"start_unix_ns": 1790000060000000000', b'"start_unix_ns": Infinity'),
    "start 1e30": raw(good(start_unix_ns=1e30)), "start abc": raw(good(start_unix_ns="abc")),
    "start negative": raw(good(start_unix_ns=-5)), "start bool": raw(good(start_unix_ns=True)),
    "end before start": raw(good(end_unix_ns=5)),
    "frames object": raw(good(frames={"a": 1})), "faces_seen many": raw(good(faces_seen="many")),
    "share list": raw(good(share=[0.5, 0.5])), "share empty": raw(good(share={})),
    "share NaN": raw(good()).replace(b'"happy": 0.5', b'"happy": NaN'), "share 7": raw(good(share={"happy": 7})),
    "device null": raw(good(device=None)), "device list": raw(good(device=["d1"])),
    "lone surrogate": raw(good()).replace(b'"room": "room-a"', b'"room": "\\ud800"'),
    "interval id missing": raw({k: v for k, v in good().items() if k != "interval_id"}),
    "interval id huge": raw(good(interval_id="x" * 5000)), "mean_confidence text": raw(good(mean_confidence="hi")),
}


def everything_works(store: FleetStore, tmp_path) -> None:
    """The page, /summary.json (strict JSON), the CSV and the CLI's `fleet page` / `fleet export`."""
    from emoedge.cli import main

    s = store.summary()
    assert "<h1>emoedge fleet:" in render_page(s)
    json.loads(summary_json(store), parse_constant=lambda c: pytest.fail(f"{c} in /summary.json"))
    assert main(["fleet", "page", "--db", str(store.path), "--out", str(tmp_path / "p.html")]) == 0
    assert main(["fleet", "export", "--db", str(store.path), "--csv", str(tmp_path / "f.csv")]) == 0
    assert len((tmp_path / "f.csv").read_text().splitlines()) == len(s["intervals"]) + 1
