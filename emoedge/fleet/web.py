"""The fleet page, ``/intervals.csv`` and ``/summary.json`` over HTTP/1.1 (127.0.0.1 by default; any other
address is warned about, and a request whose ``Host`` names another site is refused with 421:
:mod:`emoedge.core.httpguard`). The page is aggregated in the database (:mod:`emoedge.fleet.queries`);
the CSV and the JSON are sent with chunked transfer encoding as they are fetched, so memory stays
bounded whatever the store's size. Query strings are checked: anything unexpected is a 400 saying
why; a database that fails is a 503."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from emoedge.core.errors import BadInputError
from emoedge.core.httpguard import allowed_names, refuse_foreign_host, warn_if_exposed
from emoedge.fleet.backends import StoreError
from emoedge.fleet.exports import finite  # noqa: F401 (re-exported: this module's name before the split)
from emoedge.fleet.page import render_page
from emoedge.fleet.queries import PageQuery, QueryError, parse_query
from emoedge.fleet.store import FleetStore

log = logging.getLogger(__name__)
MAX_PATH_CHARS = 2048


def summary_json(store: FleetStore, query: PageQuery | None = None) -> bytes:
    """``/summary.json`` in one piece (strict JSON, never NaN or Infinity): for tests and small stores."""
    return b"".join(store.summary_chunks(query))


def intervals_csv(store: FleetStore, query: PageQuery | None = None) -> bytes:
    return b"".join(store.csv_chunks(query))


def page_html(store: FleetStore, query: PageQuery) -> bytes:
    return render_page(store.view(query)).encode()


STREAMS = {"/summary.json": ("summary_chunks", "application/json"),
           "/intervals.csv": ("csv_chunks", "text/csv; charset=utf-8")}
PAGES = ("/", "/index.html")


class FleetHandler(BaseHTTPRequestHandler):
    """GET of the page (Content-Length) and of the two streams (chunked)."""

    protocol_version = "HTTP/1.1"
    store: FleetStore
    names: frozenset[str]

    def do_GET(self):  # noqa: N802 (http.server's name)
        if refuse_foreign_host(self, self.names):
            return
        if len(self.path) > MAX_PATH_CHARS:
            return self._text(414, f"the request target is over {MAX_PATH_CHARS} characters")
        parts = urlsplit(self.path)
        if parts.path not in PAGES and parts.path not in STREAMS:
            return self._text(404, "not found")
        try:
            query = parse_query(parts.query)
        except QueryError as exc:
            return self._text(400, str(exc))
        if parts.path in STREAMS:
            return self._stream(*STREAMS[parts.path], query)
        try:
            body = page_html(self.store, query)
        except StoreError as exc:
            log.error("fleet page: %s", exc)
            return self._text(503, "the fleet store cannot be read now (see the server's log)")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _text(self, code: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, method: str, ctype: str, query: PageQuery) -> None:
        chunks = getattr(self.store, method)(query)
        try:
            first = next(chunks, b"")
        except StoreError as exc:
            log.error("fleet page: %s", exc)
            return self._text(503, "the fleet store cannot be read now (see the server's log)")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunk(first)
            for chunk in chunks:
                self._chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except (StoreError, OSError) as exc:   # the client left, or the store failed mid-way: the response ends short
            log.warning("fleet page: %s ended early: %s", self.path[:200], exc)
            self.close_connection = True
        finally:
            chunks.close()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def log_message(self, fmt, *args):
        log.debug("fleet page: " + fmt, *args)


class FleetWeb:
    """The page, ``/intervals.csv`` and ``/summary.json`` on ``host:port`` (127.0.0.1 by default)."""

    def __init__(self, store: FleetStore, host: str = "127.0.0.1", port: int = 8090):
        self.store = store
        handler = type("Handler", (FleetHandler,), {"store": store, "names": allowed_names(host)})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BadInputError(f"fleet page: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        warn_if_exposed(host, self.port, "the fleet page (--http-host)")
        self.thread = threading.Thread(target=self.server.serve_forever, name="emoedge-fleet-web", daemon=True)

    def start(self) -> FleetWeb:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
