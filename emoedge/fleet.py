"""One place to look at a fleet: ``emoedge fleet serve`` subscribes to the broker the devices publish
to (``emoedge run --mqtt``), keeps every device's interval summaries in one SQLite file, and serves
a small page on 127.0.0.1: label shares over time per room and per device, each device's health
(online/offline from its retained status and last will, when it last reported) and drift (how far its
recent label mix is from the fleet's). ``/intervals.csv`` exports the store; ``/summary.json`` is
the same data for scripts. Prometheus metrics stay on each device (``--metrics-port``) for Grafana.

The subscription is a persistent session (``clean_session=False``, a fixed client id, QoS 1), so
the broker queues what arrives while the store is down. An interval that arrives twice (the
devices resend what the broker did not acknowledge) is stored once: the ``interval_id`` is the key.

The page is plain HTML with inline SVG drawn here, no JavaScript and nothing fetched from the
internet: it works on an offline school network. Layer 2: imports paho-mqtt (the ``[fleet]``
extra) and the standard library, no TensorFlow.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from emoedge.edge.errors import BadInputError
from emoedge.edge.fileio import create_sqlite, wal_connect

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS intervals (
    interval_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    room TEXT,
    model TEXT,
    run_id TEXT,
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    start_unix_ns INTEGER NOT NULL,
    end_unix_ns INTEGER NOT NULL,
    duration_s REAL,
    frames INTEGER,
    faces_seen INTEGER,
    face_observations INTEGER,
    uncertain_share REAL,
    mean_confidence REAL,
    share_json TEXT NOT NULL,
    received_unix_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_device_time ON intervals (device, start_unix_ns);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    room TEXT,
    status TEXT,
    status_unix_ns INTEGER
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
REQUIRED = ("interval_id", "device", "start_utc", "end_utc", "start_unix_ns", "end_unix_ns", "share")
COLORS = {"happy": "#e6a100", "neutral": "#7f7f7f", "sad": "#1f77b4", "surprise": "#9467bd", "angry": "#d62728",
          "fear": "#17becf", "disgust": "#2ca02c", "contempt": "#8c564b", "uncertain": "#cccccc"}


class FleetStore:
    """The fleet's SQLite file. Each thread opens its own connection (``connect``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        create_sqlite(self.path, SCHEMA, "the fleet store", BadInputError)

    def connect(self) -> sqlite3.Connection:
        return wal_connect(self.path)

    @staticmethod
    def _count(db: sqlite3.Connection, name: str) -> None:
        db.execute("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                   (name,))

    def ingest(self, db: sqlite3.Connection, topic: str, payload: bytes) -> str:
        """One MQTT message: ``stored``, ``duplicate``, ``status`` or ``rejected`` (said in the log)."""
        parts = topic.split("/")
        with db:
            if parts[-1] == "status" and len(parts) >= 3:
                db.execute("INSERT INTO devices (device, status, status_unix_ns) VALUES (?, ?, ?) ON CONFLICT(device) "
                           "DO UPDATE SET status = excluded.status, status_unix_ns = excluded.status_unix_ns",
                           (parts[-2], payload.decode(errors="replace")[:32], time.time_ns()))
                return "status"
            try:
                m = json.loads(payload)
                missing = [k for k in REQUIRED if k not in m]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
            except ValueError as exc:
                log.warning("fleet: %s: message rejected (%s): %r", topic, exc, payload[:120])
                self._count(db, "rejected")
                return "rejected"
            cur = db.execute(
                "INSERT OR IGNORE INTO intervals (interval_id, device, room, model, run_id, start_utc, end_utc, "
                "start_unix_ns, end_unix_ns, duration_s, frames, faces_seen, face_observations, uncertain_share, "
                "mean_confidence, share_json, received_unix_ns) VALUES (" + ", ".join("?" * 17) + ")",
                (m["interval_id"], m["device"], m.get("room"), m.get("model"), m.get("run_id"), m["start_utc"],
                 m["end_utc"], int(m["start_unix_ns"]), int(m["end_unix_ns"]), m.get("duration_s"), m.get("frames"),
                 m.get("faces_seen"), m.get("face_observations"), m.get("uncertain_share"), m.get("mean_confidence"),
                 json.dumps(m["share"]), time.time_ns()))
            db.execute("INSERT INTO devices (device, room) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET "
                       "room = COALESCE(excluded.room, devices.room)", (m["device"], m.get("room")))
            kind = "stored" if cur.rowcount else "duplicate"
            self._count(db, kind)
            return kind

    def rows(self, db: sqlite3.Connection | None = None) -> list[dict]:
        own = db is None
        db = db or self.connect()
        try:
            cols = ("interval_id", "device", "room", "model", "run_id", "start_utc", "end_utc", "start_unix_ns",
                    "end_unix_ns", "duration_s", "frames", "faces_seen", "face_observations", "uncertain_share",
                    "mean_confidence", "share_json")
            out = [dict(zip(cols, r)) for r in db.execute(
                f"SELECT {', '.join(cols)} FROM intervals ORDER BY start_unix_ns, device")]
        finally:
            if own:
                db.close()
        for r in out:
            r["share"] = json.loads(r.pop("share_json"))
        return out

    def summary(self) -> dict:
        db = self.connect()
        try:
            rows = self.rows(db)
            devices = {d: {"room": room, "status": st, "status_unix_ns": t} for d, room, st, t in
                       db.execute("SELECT device, room, status, status_unix_ns FROM devices ORDER BY device")}
            counters = dict(db.execute("SELECT name, value FROM counters"))
        finally:
            db.close()
        return {"intervals": rows, "devices": devices, "counters": counters}

    def export_csv(self, out) -> int:
        rows = self.rows()
        labels = sorted({k for r in rows for k in r["share"]})
        head = ["device", "room", "model", "start_utc", "end_utc", "interval_id", "run_id", "frames", "faces_seen",
                "face_observations", "uncertain_share", "mean_confidence"]
        w = csv.writer(out)
        w.writerow(head + [f"share_{k}" for k in labels])
        for r in rows:
            w.writerow([r[k] for k in head] + [f"{r['share'].get(k, 0.0):.4f}" for k in labels])
        return len(rows)


# -- the subscriber ----------------------------------------------------------------------------
class FleetSubscriber:
    """Subscribes to ``<prefix>/+/intervals`` and ``<prefix>/+/status`` (QoS 1, persistent session)
    and stores what arrives; runs in its own thread (``start``) until ``stop``."""

    def __init__(self, target, store: FleetStore, client_id: str = "emoedge-fleet", ca_file: str | None = None):
        from emoedge.edge.mqtt import _paho

        mqtt = _paho()
        self.target, self.store = target, store
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        if target.tls or ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.reconnect_delay_set(0.2, 10)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.counts = {"stored": 0, "duplicate": 0, "status": 0, "rejected": 0}
        self._db: sqlite3.Connection | None = None
        self.connected = threading.Event()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("fleet: the broker %s refused the connection: %s", self.target, reason_code)
            return
        client.subscribe([(f"{self.target.prefix}/+/intervals", 1), (f"{self.target.prefix}/+/status", 1)])
        log.info("fleet: subscribed to %s/+/intervals and /status on %s", self.target.prefix, self.target)
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        if self._db is None:
            self._db = self.store.connect()       # the network thread's own connection
        kind = self.store.ingest(self._db, msg.topic, msg.payload)
        self.counts[kind] += 1

    def start(self) -> None:
        self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the page ------------------------------------------------------------------------------------
def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) of two label distributions."""
    keys = set(p) | set(q)
    m = {k: (p.get(k, 0.0) + q.get(k, 0.0)) / 2 for k in keys}

    def kl(a):
        return sum(a.get(k, 0.0) * math.log2(a.get(k, 0.0) / m[k]) for k in keys if a.get(k, 0.0) > 0)
    return max(0.0, (kl(p) + kl(q)) / 2)


def mean_share(rows: list[dict]) -> dict[str, float]:
    """Label shares over intervals, each weighted by its face observations."""
    tot: dict[str, float] = {}
    w = sum(max(1, r["face_observations"] or 0) for r in rows)
    for r in rows:
        for k, v in r["share"].items():
            tot[k] = tot.get(k, 0.0) + v * max(1, r["face_observations"] or 0)
    return {k: v / w for k, v in tot.items()} if w else {}


def _svg_lines(series: list[tuple[int, dict[str, float]]], labels: list[str], width: int = 560,
               height: int = 170, title: str = "") -> str:
    """Label shares over time as one polyline per label (x: time, y: share 0..1)."""
    pad_l, pad_b, pad_t = 34, 20, 18
    if not series:
        return f'<svg width="{width}" height="{height}"><text x="10" y="40">no intervals yet</text></svg>'
    t0, t1 = series[0][0], series[-1][0]
    span = max(1, t1 - t0)

    def x(t):
        return pad_l + (width - pad_l - 8) * (t - t0) / span

    def y(v):
        return pad_t + (height - pad_t - pad_b) * (1 - v)

    out = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="{pad_l}" y="12" class="t">{html.escape(title)}</text>']
    for v in (0, 0.5, 1):
        out.append(f'<line x1="{pad_l}" x2="{width - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                   f'<text x="2" y="{y(v) + 4:.1f}" class="ax">{v:.1f}</text>')
    for lab in labels:
        pts = " ".join(f"{x(t):.1f},{y(s.get(lab, 0.0)):.1f}" for t, s in series)
        out.append(f'<polyline data-label="{html.escape(lab)}" points="{pts}" fill="none" '
                   f'stroke="{COLORS.get(lab, "#444")}" stroke-width="1.6"/>')
    out.append(f'<text x="{pad_l}" y="{height - 4}" class="ax">{_hm(t0)}</text>'
               f'<text x="{width - 60}" y="{height - 4}" class="ax">{_hm(t1)}</text></svg>')
    return "".join(out)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _hm(unix_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(unix_ns / 1e9))


def _bucketed(rows: list[dict], bucket_ns: int) -> list[tuple[int, dict[str, float]]]:
    """Rows merged per time bucket (a room: its devices' intervals together)."""
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["start_unix_ns"] // bucket_ns * bucket_ns, []).append(r)
    return [(t, mean_share(g)) for t, g in sorted(groups.items())]


def render_page(summary: dict, now_ns: int | None = None, stale_after_s: float = 120.0) -> str:
    """The fleet page as one HTML string (inline SVG, no scripts)."""
    now_ns = now_ns or time.time_ns()
    rows = summary["intervals"]
    labels = sorted({k for r in rows for k in r["share"]}, key=lambda k: (k == "uncertain", k))
    fleet = mean_share(rows)
    by_dev: dict[str, list[dict]] = {}
    for r in rows:
        by_dev.setdefault(r["device"], []).append(r)
    devices = sorted(set(by_dev) | set(summary["devices"]))
    span_ns = (rows[-1]["end_unix_ns"] - rows[0]["start_unix_ns"]) if rows else 0
    bucket = max(1_000_000_000, span_ns // 60)
    rooms: dict[str, list[dict]] = {}
    for r in rows:
        rooms.setdefault(r["room"] or "(no room)", []).append(r)
    c = summary["counters"]
    h = ['<!doctype html><html><head><meta charset="utf-8"><title>emoedge fleet</title><style>',
         "body{font-family:sans-serif;margin:16px;color:#222} h1{font-size:20px} h2{font-size:16px;margin-top:22px}",
         "table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}",
         "th{background:#f3f3f3} td.l{text-align:left} .off{color:#b00;font-weight:bold} .on{color:#070}",
         ".grid{stroke:#e5e5e5} .ax{font-size:10px;fill:#666} .t{font-size:12px;fill:#222}",
         ".charts{display:flex;flex-wrap:wrap;gap:10px} .legend span{display:inline-block;margin-right:10px}",
         "</style></head><body>",
         f"<h1>emoedge fleet: {len(devices)} devices, {len(rows)} intervals</h1>",
         f"<p>Received {c.get('stored', 0)} intervals, {c.get('duplicate', 0)} duplicates dropped, "
         f"{c.get('rejected', 0)} rejected. Updated {_hm(now_ns)} UTC. "
         '<a href="intervals.csv">intervals.csv</a> · <a href="summary.json">summary.json</a></p>',
         '<p class="legend">' + "".join(f'<span style="color:{COLORS.get(k, "#444")}">&#9632; {html.escape(k)}</span>'
                                         for k in labels) + "</p>",
         "<h2>Device health</h2><table><tr><th>device</th><th>room</th><th>status</th><th>last interval</th>"
         "<th>intervals</th><th>faces seen</th><th>uncertain</th><th>drift from fleet (JS)</th></tr>"]
    for d in devices:
        rs = by_dev.get(d, [])
        info = summary["devices"].get(d, {})
        last = rs[-1]["end_unix_ns"] if rs else None
        age = (now_ns - last) / 1e9 if last else None
        status = info.get("status") or "unknown"
        stale = age is None or age > stale_after_s
        recent = mean_share(rs[-10:]) if rs else {}
        drift = js_divergence(recent, fleet) if rs else float("nan")
        cls = "off" if status == "offline" or stale else "on"
        h.append(f'<tr data-device="{html.escape(d)}"><td class="l">{html.escape(d)}</td>'
                 f'<td class="l">{html.escape(str(info.get("room") or (rs[-1]["room"] if rs else "") or ""))}</td>'
                 f'<td class="{cls}">{html.escape(status)}{" (stale)" if stale and status != "offline" else ""}</td>'
                 f'<td>{_hm(last) + f" ({_ago(age)})" if last else "never"}</td><td>{len(rs)}</td>'
                 f'<td>{sum(r["faces_seen"] or 0 for r in rs)}</td>'
                 f'<td>{(recent.get("uncertain", 0.0) * 100):.0f}%</td><td>{drift:.3f}</td></tr>')
    h.append("</table><h2>Label shares over time, per room</h2><div class='charts'>")
    for room in sorted(rooms):
        h.append(_svg_lines(_bucketed(rooms[room], bucket), labels, title=f"room {room}"))
    h.append("</div><h2>Per device</h2><div class='charts'>")
    for d in devices:
        h.append(_svg_lines([(r["start_unix_ns"], r["share"]) for r in by_dev.get(d, [])], labels, 420, 150,
                            title=d))
    h.append("</div></body></html>")
    return "\n".join(h)


class FleetWeb:
    """The page, ``/intervals.csv`` and ``/summary.json`` on ``host:port`` (127.0.0.1 by default)."""

    def __init__(self, store: FleetStore, host: str = "127.0.0.1", port: int = 8090):
        self.store = store
        handler = self._handler()
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BadInputError(f"fleet page: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="emoedge-fleet-web", daemon=True)

    def _handler(self):
        store = self.store

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                if path in ("/", "/index.html"):
                    body, ctype = render_page(store.summary()).encode(), "text/html; charset=utf-8"
                elif path == "/summary.json":
                    body, ctype = json.dumps(store.summary()).encode(), "application/json"
                elif path == "/intervals.csv":
                    buf = io.StringIO()
                    store.export_csv(buf)
                    body, ctype = buf.getvalue().encode(), "text/csv; charset=utf-8"
                else:
                    self.send_error(404, "not found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
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
