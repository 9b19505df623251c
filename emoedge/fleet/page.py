"""The fleet page: plain HTML with inline SVG drawn here, no JavaScript and nothing fetched from the
internet (it works on an offline school network). Label shares over time per room and per device,
each device's health (online/offline, when it last reported, intervals missing from its sequence)
and drift (Jensen-Shannon distance of its recent label mix from the fleet's)."""

from __future__ import annotations

import html
import time

from emoedge.core.divergence import js_divergence

COLORS = {"happy": "#e6a100", "neutral": "#7f7f7f", "sad": "#1f77b4", "surprise": "#9467bd", "angry": "#d62728",
          "fear": "#17becf", "disgust": "#2ca02c", "contempt": "#8c564b", "uncertain": "#cccccc"}


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


STYLE = ("body{font-family:sans-serif;margin:16px;color:#222} h1{font-size:20px} h2{font-size:16px;margin-top:22px}\n"
         "table{border-collapse:collapse;font-size:13px}\n"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\n"
         "th{background:#f3f3f3} td.l{text-align:left} .off{color:#b00;font-weight:bold} .on{color:#070}\n"
         ".grid{stroke:#e5e5e5} .ax{font-size:10px;fill:#666} .t{font-size:12px;fill:#222}\n"
         ".charts{display:flex;flex-wrap:wrap;gap:10px} .legend span{display:inline-block;margin-right:10px}")


def _grouped(rows: list[dict], key) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _counts_line(summary: dict, now_ns: int) -> str:
    c = summary["counters"]
    missing = sum(s["missing"] for s in summary.get("sequence", {}).values())
    return (f"<p>Received {c.get('stored', 0)} intervals, {c.get('duplicate', 0)} duplicates dropped, "
            f"{c.get('conflict', 0)} conflicts (an id seen again with other content), {c.get('rejected', 0)} rejected, "
            f"<span class=\"missing\">{missing} missing</span> from the devices' sequences. "
            f"Updated {_hm(now_ns)} UTC. "
            '<a href="intervals.csv">intervals.csv</a> · <a href="summary.json">summary.json</a></p>')


def _device_row(d: str, rs: list[dict], summary: dict, fleet: dict[str, float], now_ns: int,
                stale_after_s: float) -> str:
    info = summary["devices"].get(d, {})
    last = rs[-1]["end_unix_ns"] if rs else None
    age = (now_ns - last) / 1e9 if last else None
    status = info.get("status") or "unknown"
    stale = age is None or age > stale_after_s
    recent = mean_share(rs[-10:]) if rs else {}
    drift = js_divergence(recent, fleet) if rs else float("nan")
    cls = "off" if status == "offline" or stale else "on"
    missing = summary.get("sequence", {}).get(d, {}).get("missing", 0)
    return (f'<tr data-device="{html.escape(d)}"><td class="l">{html.escape(d)}</td>'
            f'<td class="l">{html.escape(str(info.get("room") or (rs[-1]["room"] if rs else "") or ""))}</td>'
            f'<td class="{cls}">{html.escape(status)}{" (stale)" if stale and status != "offline" else ""}</td>'
            f'<td>{_hm(last) + f" ({_ago(age)})" if last else "never"}</td><td>{len(rs)}</td>'
            f'<td class="{"off" if missing else "on"}">{missing}</td><td>{sum(r["faces_seen"] or 0 for r in rs)}</td>'
            f'<td>{(recent.get("uncertain", 0.0) * 100):.0f}%</td><td>{drift:.3f}</td></tr>')


def render_page(summary: dict, now_ns: int | None = None, stale_after_s: float = 120.0) -> str:
    """The fleet page as one HTML string (inline SVG, no scripts)."""
    now_ns = now_ns or time.time_ns()
    rows = summary["intervals"]
    labels = sorted({k for r in rows for k in r["share"]}, key=lambda k: (k == "uncertain", k))
    fleet = mean_share(rows)
    by_dev = _grouped(rows, lambda r: r["device"])
    devices = sorted(set(by_dev) | set(summary["devices"]))
    span_ns = (rows[-1]["end_unix_ns"] - rows[0]["start_unix_ns"]) if rows else 0
    bucket = max(1_000_000_000, span_ns // 60)
    rooms = _grouped(rows, lambda r: r["room"] or "(no room)")
    h = ['<!doctype html><html><head><meta charset="utf-8"><title>emoedge fleet</title><style>', STYLE,
         "</style></head><body>", f"<h1>emoedge fleet: {len(devices)} devices, {len(rows)} intervals</h1>",
         _counts_line(summary, now_ns),
         '<p class="legend">' + "".join(f'<span style="color:{COLORS.get(k, "#444")}">&#9632; {html.escape(k)}</span>'
                                         for k in labels) + "</p>",
         "<h2>Device health</h2><table><tr><th>device</th><th>room</th><th>status</th><th>last interval</th>"
         "<th>intervals</th><th>missing</th><th>faces seen</th><th>uncertain</th><th>drift from fleet (JS)</th></tr>"]
    h += [_device_row(d, by_dev.get(d, []), summary, fleet, now_ns, stale_after_s) for d in devices]
    h.append("</table><h2>Label shares over time, per room</h2><div class='charts'>")
    h += [_svg_lines(_bucketed(rooms[room], bucket), labels, title=f"room {room}") for room in sorted(rooms)]
    h.append("</div><h2>Per device</h2><div class='charts'>")
    h += [_svg_lines([(r["start_unix_ns"], r["share"]) for r in by_dev.get(d, [])], labels, 420, 150, title=d)
          for d in devices]
    h.append("</div></body></html>")
    return "\n".join(h)
