"""The fleet page: plain HTML with inline SVG drawn here, no JavaScript and nothing fetched from the
internet (it works on an offline school network). Label shares over time per room (time buckets of the
date range) and per device (its last N intervals), one page of devices with their health
(online/offline, when it last reported, intervals missing from its sequence) and drift (Jensen-Shannon
distance of its recent label mix from the fleet's), a date range form and page links (plain GET).
It draws a :class:`~emoedge.fleet.queries.PageView`, which the database aggregated."""

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
        if len(series) == 1:
            out.append(f'<circle cx="{x(t0):.1f}" cy="{y(series[0][1].get(lab, 0.0)):.1f}" r="2.5" '
                       f'fill="{COLORS.get(lab, "#444")}"/>')
    out.append(f'<text x="{pad_l}" y="{height - 4}" class="ax">{_hm(t0, span)}</text>'
               f'<text x="{width - 64}" y="{height - 4}" class="ax">{_hm(t1, span)}</text></svg>')
    return "".join(out)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _hm(unix_ns: int, span_ns: int = 0) -> str:
    return time.strftime("%Y-%m-%d" if span_ns > 2 * 86400 * 10**9 else "%H:%M:%S", time.gmtime(unix_ns / 1e9))


STYLE = ("body{font-family:sans-serif;margin:16px;color:#222} h1{font-size:20px} h2{font-size:16px;margin-top:22px}\n"
         "table{border-collapse:collapse;font-size:13px}\n"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\n"
         "th{background:#f3f3f3} td.l{text-align:left} .off{color:#b00;font-weight:bold} .on{color:#070}\n"
         ".grid{stroke:#e5e5e5} .ax{font-size:10px;fill:#666} .t{font-size:12px;fill:#222}\n"
         ".charts{display:flex;flex-wrap:wrap;gap:10px} .legend span{display:inline-block;margin-right:10px}")


def _counts_line(v, now_ns: int) -> str:
    c = v.counters
    return (f"<p>Received {c.get('stored', 0)} intervals, {c.get('duplicate', 0)} duplicates dropped, "
            f"{c.get('conflict', 0)} conflicts (an id seen again with other content), {c.get('rejected', 0)} rejected, "
            f"<span class=\"missing\">{v.missing_total} missing</span> from the devices' sequences. "
            f"Updated {_hm(now_ns)} UTC. "
            f'<a href="intervals.csv?{v.query.params(page=None, per_page=None)}">intervals.csv</a> · '
            f'<a href="summary.json?{v.query.params(page=None, per_page=None)}">summary.json</a></p>')


def _range_form(v) -> str:
    lo, hi = _day(v.from_unix_ns), _day(v.to_unix_ns - 1)
    return (f'<form method="get" action="./"><label>from <input type="date" name="from" value="{lo}"></label> '
            f'<label>to <input type="date" name="to" value="{hi}"></label> '
            f'<input type="hidden" name="per_page" value="{v.query.per_page}"> <button>show</button> '
            f"<span class=\"ax\">{v.intervals_in_range} intervals from {lo} to {hi} (UTC); buckets of "
            f"{_duration(v.bucket_ns)}</span></form>")


def _pager(v) -> str:
    q, links = v.query, []
    if q.page > 1:
        links.append(f'<a href="?{html.escape(q.params(page=q.page - 1))}">&larr; previous</a>')
    links.append(f"devices page {q.page} of {v.pages} ({v.devices_total} devices, {q.per_page} a page)")
    if q.page < v.pages:
        links.append(f'<a href="?{html.escape(q.params(page=q.page + 1))}">next &rarr;</a>')
    return '<p class="pager">' + " · ".join(links) + "</p>"


def _day(unix_ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_ns // 10**9))


def _duration(ns: int) -> str:
    h = ns // (3600 * 10**9)
    return f"{h // 24} day(s)" if h >= 24 and h % 24 == 0 else f"{h} hour(s)"


def _device_row(d, fleet: dict[str, float], now_ns: int, stale_after_s: float) -> str:
    last = d.last_end_unix_ns
    age = (now_ns - last) / 1e9 if last else None
    status = d.status or "unknown"
    stale = age is None or age > stale_after_s
    drift = js_divergence(d.recent_share, fleet) if d.recent else float("nan")
    cls = "off" if status == "offline" or stale else "on"
    return (f'<tr data-device="{html.escape(d.device)}"><td class="l">{html.escape(d.device)}</td>'
            f'<td class="l">{html.escape(str(d.room or ""))}</td>'
            f'<td class="{cls}">{html.escape(status)}{" (stale)" if stale and status != "offline" else ""}</td>'
            f'<td>{_hm(last) + f" ({_ago(age)})" if last else "never"}</td><td>{d.intervals_in_range}</td>'
            f'<td class="{"off" if d.missing else "on"}">{d.missing}</td><td>{d.faces_seen_in_range}</td>'
            f'<td>{(d.recent_share.get("uncertain", 0.0) * 100):.0f}%</td><td>{drift:.3f}</td></tr>')


def render_page(view, now_ns: int | None = None, stale_after_s: float = 120.0) -> str:
    """The fleet page as one HTML string (inline SVG, no scripts) of a :class:`~emoedge.fleet.queries.PageView`
    (or of ``FleetStore.summary()``, whose ``"page"`` it draws)."""
    v = view["page"] if isinstance(view, dict) else view
    now_ns = now_ns or time.time_ns()
    labels = list(v.labels)
    h = ['<!doctype html><html><head><meta charset="utf-8"><title>emoedge fleet</title><style>', STYLE,
         "</style></head><body>",
         f"<h1>emoedge fleet: {v.devices_total} devices, {v.intervals_in_range} intervals</h1>",
         _counts_line(v, now_ns), _range_form(v),
         '<p class="legend">' + "".join(f'<span style="color:{COLORS.get(k, "#444")}">&#9632; {html.escape(k)}</span>'
                                         for k in labels) + "</p>",
         "<h2>Device health</h2>", _pager(v),
         "<table><tr><th>device</th><th>room</th><th>status</th><th>last interval</th>"
         "<th>intervals</th><th>missing</th><th>faces seen</th>"
         f"<th>uncertain (last {v.query.last})</th><th>drift from fleet (JS, last {v.query.last})</th></tr>"]
    h += [_device_row(d, v.fleet_share, now_ns, stale_after_s) for d in v.devices]
    h.append("</table><h2>Label shares over time: the fleet, and the rooms of this page's devices</h2>"
             "<div class='charts'>")
    h.append(_svg_lines(list(v.fleet), labels, title="the whole fleet"))
    h += [_svg_lines(v.rooms[room], labels, title=f"room {room}") for room in sorted(v.rooms)]
    h.append("</div><h2>Per device</h2><div class='charts'>")
    h += [_svg_lines(list(d.series), labels, 420, 150, title=d.device) for d in v.devices]
    h.append("</div></body></html>")
    return "\n".join(h)
