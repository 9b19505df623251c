"""The page side of ``emoedge bench fleet --simulate``: the store pre-filled to a school year
(``--prefill-rows``, by the store's own :func:`emoedge.fleet.prefill.prefill`: 5-minute intervals of school
days at up to 1,000 devices, as many days as make the rows asked for) and the time to render the page and
``/summary.json`` (the store's :func:`emoedge.fleet.prefill.measure_page`, the page server over real HTTP
on 127.0.0.1, where this revision has it; else timed here over HTTP on a running worker), p50/p95."""

from __future__ import annotations

import importlib
import time
import urllib.request

from emoedge.benchmarks.fleet_load_stats import percentile

PAGES = ("/", "/summary.json")
REPEATS = 20
SLOTS_PER_DAY = 96              # prefill's 5-minute intervals from 08:00 to 16:00
PREFILL_DEVICES = 1000


def _prefill_module():
    try:
        return importlib.import_module("emoedge.fleet.prefill")
    except ImportError:
        return None


def prefill_shape(rows: int) -> tuple[int, int]:
    """(devices, school days) of a prefill of about ``rows`` intervals: up to 1,000 devices, whole days (the
    nearest number; prefill also leaves out 0.1 % as lost intervals)."""
    devices = max(1, min(PREFILL_DEVICES, rows // SLOTS_PER_DAY))
    return devices, max(1, round(rows / (devices * SLOTS_PER_DAY)))


def prefill_store(db: str, rows: int) -> dict:
    """About ``rows`` synthetic intervals into the EMPTY store ``db`` (emoedge.fleet.prefill.prefill): what it
    wrote and how long it took, or why not."""
    mod = _prefill_module()
    if mod is None or not hasattr(mod, "prefill"):
        return {"rows": rows, "done": False, "reason": "this revision has no emoedge.fleet.prefill"}
    from emoedge.fleet.store import open_store

    devices, days = prefill_shape(rows)
    t0 = time.perf_counter()
    got = mod.prefill(open_store(db), devices, days)
    return {"rows": rows, "done": True, "devices": devices, "school_days": days,
            "seconds": round(time.perf_counter() - t0, 1), "result": got}


def time_http(port: int, path: str, repeats: int = REPEATS, timeout_s: float = 600.0) -> dict:
    """GET ``http://127.0.0.1:port{path}`` ``repeats`` times: p50/p95/max (ms), the body's size."""
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
            "max_ms": round(max(times), 2), "requests": repeats, "bytes": size}


def _by_store(db: str, fn) -> dict:
    """The store's measure_page, its numbers in this report's names."""
    from emoedge.fleet.store import open_store

    got = fn(open_store(db), REPEATS)
    return {p: {"p50_ms": got[p]["p50"], "p95_ms": got[p]["p95"], "max_ms": got[p]["max"],
                "requests": got.get("requests", REPEATS), "bytes": got[p].get("bytes")} for p in PAGES if p in got}


def measure_pages(db: str, http_port: int | None, prefill_rows: int) -> dict:
    """Render times of the page and ``/summary.json``: by the store's measure_page when there is one,
    else over HTTP from the worker at ``http_port``; a page that fails is said in ``errors``."""
    mod = _prefill_module()
    fn = getattr(mod, "measure_page", None) if mod else None
    out = {"prefill_rows": prefill_rows, "pages": {}}
    if fn is not None:
        out["how"] = "emoedge.fleet.prefill.measure_page (the page server over HTTP on 127.0.0.1, body read)"
        try:
            out["pages"] = _by_store(db, fn)
        except (OSError, KeyError, TypeError) as exc:
            out["errors"] = {"measure_page": f"{type(exc).__name__}: {exc}"}
        return out
    if http_port is None:
        return {**out, "how": None, "errors": {"page": "no worker serving the page"}}
    out["how"] = "HTTP GET on a running fleet serve worker (request to last byte)"
    for p in PAGES:
        try:
            out["pages"][p] = time_http(http_port, p)
        except OSError as exc:       # URLError, a dropped connection, a timeout: the worker failed to serve it
            out.setdefault("errors", {})[p] = f"{type(exc).__name__}: {exc}"
    return out
