"""``fleet-load.json`` and ``fleet-load.md`` of ``emoedge bench fleet --simulate``, and the verdicts on the
issue's targets: every interval stored exactly once (steady run, killed worker included, and the burst),
p99 end-to-end lag under 5 s, page and ``/summary.json`` p95 under 1 s."""

from __future__ import annotations

import json
from pathlib import Path

from emoedge.benchmarks.machine import dirty_warning

LAG_P99_TARGET_S = 5.0
PAGE_P95_TARGET_MS = 1000.0
REQUIRED = ("machine", "date", "config", "connected", "steady", "burst", "page", "store", "workers", "errors",
            "targets")


METHOD = [
    "- Devices: lightweight simulated boxes (emoedge.benchmarks.fleet_load_devices), one MQTT connection and client "
    "id each, retained online status and offline last will, QoS 1 interval payloads built by the device's own "
    "`interval_payload` with `<run>-<seq>` ids, a few processes with one event loop each.",
    "- Published: what the broker acknowledged (PUBACK) to the devices. Stored: rows of the simulated devices in the "
    "store's `intervals` table, counted in total and by distinct `interval_id` (read from the database, not from the "
    "store's code).",
    "- Lag: the store's `received_unix_ns` minus the wall clock when the device called publish (a side table); the "
    "intervals a killed worker held wait for its restart and count in full.",
    "- Ingest rate: intervals stored / (last stored - first published). Burst drain: from the workers' restart (their "
    "start-up included) to the last burst interval stored.",
    "- CPU: user + system seconds from /proc/PID/stat (workers over all their lives, from wait4 at their end; the "
    "broker; PostgreSQL's server processes including exited backends; the device processes), over the phase, per "
    "interval stored in it.",
]


def targets(res: dict) -> dict:
    """Each target: True (met), False (missed) or None (not measured in this run)."""
    steady, burst = res.get("steady"), res.get("burst")
    p99 = steady["lag"]["p99_s"] if steady else None
    pages = ((res.get("page") or {}).get("pages") or {}) if res.get("config", {}).get("prefill_rows") else {}
    return {"steady_exactly_once": steady["accounting"]["exactly_once"] if steady else None,
            "killed_worker_lost_nothing": (steady["accounting"]["exactly_once"]
                                           if steady and steady.get("killed") else None),
            "lag_p99_under_5_s": (p99 < LAG_P99_TARGET_S) if p99 is not None else None,
            "burst_exactly_once": burst["accounting"]["exactly_once"] if burst else None,
            "page_p95_under_1_s": (all(p["p95_ms"] < PAGE_P95_TARGET_MS for p in pages.values())
                                   if pages else None)}


def passed(res: dict) -> bool:
    """Exit status of the bench: no error, and no target missed (unmeasured ones do not count)."""
    return not res["errors"] and all(v is not False for v in res["targets"].values())


def _f(x, fmt: str = ".2f", none: str = "-") -> str:
    return none if x is None else format(x, fmt)


def _verdict(v) -> str:
    return {True: "met", False: "**MISSED**", None: "not measured"}[v]


def _phase_lines(name: str, ph: dict) -> list[str]:
    a, c = ph["accounting"], ph["cpu"]
    lines = [f"- Published (acknowledged by the broker): **{a['published']}**; rows in the store: **{a['rows']}**, "
             f"distinct interval ids **{a['distinct']}**; missing {a['missing']}, unexpected {a['unexpected']} "
             f"({'every one, exactly once' if a['exactly_once'] else 'NOT exactly once'})."]
    if name == "steady":
        lag = ph["lag"]
        lines.append(f"- Ingest rate {_f(ph['ingest_rate_per_s'], '.1f')} intervals/s; end-to-end lag (stored "
                     f"minus published) p50 {_f(lag['p50_s'], '.3f')} s, p95 {_f(lag['p95_s'], '.3f')} s, "
                     f"p99 {_f(lag['p99_s'], '.3f')} s, max {_f(lag['max_s'], '.3f')} s over {lag['count']}.")
        if ph.get("killed"):
            k = ph["killed"]
            lines.append(f"- Worker {k['worker']} SIGKILLed at {k['at_s']} s (exit {k['exit_code']}), restarted at "
                         f"{k['restarted_at_s']} s.")
    else:
        lines.append(f"- Drained in {_f(ph['drain_s'], '.1f')} s after the workers restarted "
                     f"({_f(ph['drain_rate_per_s'], '.0f')} intervals/s).")
    lines.append(f"- CPU per interval: workers {_f(c['workers_ms_per_interval'], '.3f')} ms, broker "
                 f"{_f(c['broker_ms_per_interval'], '.3f')} ms, PostgreSQL {_f(c['postgresql_ms_per_interval'], '.3f')}"
                 f" ms, simulated devices {_f(c['devices_ms_per_interval'], '.3f')} ms (CPU seconds: workers "
                 f"{c['workers_s']}, broker {c['broker_s']}, PostgreSQL {c['postgresql_s']}, devices "
                 f"{c['devices_s']}).")
    return lines


def _page_lines(page: dict | None) -> list[str]:
    if not page:
        return []
    if page.get("pages") or page.get("errors"):
        out = [f"- Page timing ({page['how']}; store pre-filled with {page['prefill_rows']} rows):"]
        out += [f"  - `{p}`: p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms ({t['requests']} requests, {t['bytes']} bytes)"
                for p, t in page["pages"].items()]
        return out + [f"  - `{p}`: FAILED ({e})" for p, e in (page.get("errors") or {}).items()]
    return [f"- Page timing: {page.get('how') or page.get('reason')}: {page.get('result', '')}"]


def render_markdown(res: dict, command: str) -> str:
    cfg, m = res["config"], res["machine"]
    lines = [f"# A district's load on the fleet path: {cfg['devices']} simulated devices ({res['date']})", ""]
    warn = dirty_warning(m.get("git_revision"))
    if warn:
        lines += [f"> {warn}", ""]
    st = res["store"]
    lines += [f"`{command}` on {m['cpu']} ({m['cores']} cores), git {m.get('git_revision')}: "
              f"{cfg['devices']} simulated devices ({res.get('connected')} connected), one MQTT connection each, "
              f"at {cfg['rate_hz']:g} interval/s each, through one Mosquitto into {cfg['workers']} "
              "`emoedge fleet serve` worker(s)"
              f"{' in the shared group ' + res['workers']['share_group'] if res['workers']['share_group'] else ''}"
              f" and one {st['kind']} store (size at the end {_f((st['size_bytes'] or 0) / 1e6, '.1f')} MB; "
              f"counters {st['counters']}).", "", "## Targets", ""]
    lines += [f"- {k.replace('_', ' ')}: {_verdict(v)}" for k, v in res["targets"].items()]
    if (res.get("steady") or {}).get("killed"):
        lines.append("- (the lag includes the killed worker's share waiting for its restart: the steady lag is a "
                     "run without --kill-worker-at)")
    for name, title in (("steady", f"Steady run, {cfg['seconds']:g} s"), ("burst", f"Burst of {cfg['burst']}")):
        if res.get(name):
            lines += ["", f"## {title}", ""] + _phase_lines(name, res[name])
    if res.get("prefill") or res.get("page"):
        lines += ["", "## Page", ""]
        if res.get("prefill"):
            p = res["prefill"]
            lines.append(f"- Prefill (asked {p['rows']} rows): " + (
                f"{p['result'].get('intervals')} intervals ({p['devices']} devices x {p['school_days']} school days) "
                f"in {p['seconds']} s" if p["done"] else p["reason"]))
        lines += _page_lines(res.get("page"))
    lines += ["", "## How it is measured", ""] + METHOD
    if res["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in res["errors"]]
    lines += ["", f"Worker lives {res['workers']['lives']}, exit codes {res['workers']['exit_codes']}; the "
                  f"broker's CPU over its life {_f(res.get('broker_life_cpu_s'), '.1f')} s."]
    return "\n".join(lines) + "\n"


def write_load_report(res: dict, out: Path, command: str) -> Path:
    """fleet-load.json and fleet-load.md in ``out``; the Markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet-load.json").write_text(json.dumps({**res, "command": command}, indent=2, default=str) + "\n")
    md = out / "fleet-load.md"
    md.write_text(render_markdown(res, command))
    return md
