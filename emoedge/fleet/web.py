"""The fleet page, ``/intervals.csv`` and ``/summary.json`` over HTTP (127.0.0.1 by default; any other
address is warned about, and a request whose ``Host`` names another site is refused with 421:
:mod:`emoedge.core.httpguard`)."""

from __future__ import annotations

import io
import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from emoedge.core.errors import BadInputError
from emoedge.core.httpguard import allowed_names, refuse_foreign_host, warn_if_exposed
from emoedge.fleet.page import render_page
from emoedge.fleet.store import FleetStore

log = logging.getLogger(__name__)


def finite(value):
    """``value`` with every NaN or infinite number replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def summary_json(store: FleetStore) -> bytes:
    """``/summary.json``: the store's summary as strict JSON (never NaN or Infinity)."""
    return json.dumps(finite(store.summary()), allow_nan=False).encode()


def intervals_csv(store: FleetStore) -> bytes:
    buf = io.StringIO()
    store.export_csv(buf)
    return buf.getvalue().encode()


class FleetWeb:
    """The page, ``/intervals.csv`` and ``/summary.json`` on ``host:port`` (127.0.0.1 by default)."""

    def __init__(self, store: FleetStore, host: str = "127.0.0.1", port: int = 8090):
        self.store = store
        handler = self._handler(allowed_names(host))
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BadInputError(f"fleet page: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port = self.server.server_address[1]
        warn_if_exposed(host, self.port, "the fleet page (--http-host)")
        self.thread = threading.Thread(target=self.server.serve_forever, name="emoedge-fleet-web", daemon=True)

    def _handler(self, names: frozenset[str]):
        routes = {"/": (lambda s: render_page(s.summary()).encode(), "text/html; charset=utf-8"),
                  "/summary.json": (summary_json, "application/json"),
                  "/intervals.csv": (intervals_csv, "text/csv; charset=utf-8")}
        routes["/index.html"] = routes["/"]
        store = self.store

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if refuse_foreign_host(self, names):
                    return
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404, "not found")
                    return
                body = route[0](store)
                self.send_response(200)
                self.send_header("Content-Type", route[1])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                log.debug("fleet page: " + fmt, *args)

        return Handler

    def start(self) -> FleetWeb:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
