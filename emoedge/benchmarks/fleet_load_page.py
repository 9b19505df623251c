"""The page side of ``emoedge bench fleet --simulate``: the store pre-filled to a school year
(``--prefill-rows``, by the store's own :mod:`emoedge.fleet.prefill` where this revision has it) and the
time to render the page and ``/summary.json`` (the store's ``measure_page`` where it exists; else timed
here over HTTP on a running worker: the whole request, body read to the end), p50/p95."""

from __future__ import annotations

import importlib
import inspect
import time
import urllib.request

from emoedge.benchmarks.fleet_load_stats import percentile

PAGES = ("/", "/summary.json")
REPEATS = 7


def _prefill_module():
    try:
        return importlib.import_module("emoedge.fleet.prefill")
    except ImportError:
        return None


def prefill_store(db: str, rows: int) -> dict:
    """``rows`` synthetic intervals into the store ``db`` by emoedge.fleet.prefill (what it returned, with the
    wall time), or why not."""
    mod = _prefill_module()
    fn = getattr(mod, "prefill", None) if mod else None
    if fn is None:
        return {"rows": rows, "done": False, "reason": "this revision has no emoedge.fleet.prefill.prefill"}
    t0 = time.perf_counter()
    got = fn(db, rows)
    return {"rows": rows, "done": True, "seconds": round(time.perf_counter() - t0, 1),
            "result": got if isinstance(got, (dict, int, float, str, type(None))) else repr(got)}


def time_http(port: int, path: str, repeats: int = REPEATS, timeout_s: float = 600.0) -> dict:
    """GET ``http://127.0.0.1:port{path}`` ``repeats`` times: the times (ms), p50/p95, the body's size."""
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
            "max_ms": round(max(times), 2), "requests": repeats, "bytes": size}


def _store_measure(db: str):
    """The store's own ``measure_page(db, ...)``, if this revision has one."""
    mod = _prefill_module()
    fn = getattr(mod, "measure_page", None) if mod else None
    if fn is None or not callable(fn):
        return None
    try:
        inspect.signature(fn).bind(db)
    except TypeError:
        return None
    return fn


def measure_pages(db: str, http_port: int | None, prefill_rows: int) -> dict:
    """Render times of the page and ``/summary.json``: by the store's measure_page when there is one,
    else over HTTP from the worker at ``http_port``."""
    rows = {"prefill_rows": prefill_rows}
    fn = _store_measure(db)
    if fn is not None:
        got = fn(db)
        return {**rows, "how": "emoedge.fleet.prefill.measure_page",
                "result": got if isinstance(got, dict) else repr(got)}
    if http_port is None:
        return {**rows, "how": None, "reason": "no worker serving the page"}
    out = {**rows, "how": "HTTP GET on a running fleet serve worker (request to last byte)", "pages": {}}
    for p in PAGES:
        try:
            out["pages"][p] = time_http(http_port, p)
        except OSError as exc:       # URLError, a dropped connection, a timeout: the worker failed to serve it
            out.setdefault("errors", {})[p] = f"{type(exc).__name__}: {exc}"
    return out
