"""A fleet on one machine (``emoedge bench fleet``): N ``emoedge run`` processes on the looped shared
clip, each publishing its interval summaries over MQTT (``--mqtt``), one broker (Mosquitto, started
here on 127.0.0.1 unless ``--mqtt`` names one) and one ``emoedge fleet serve`` store. Checks that
every interval stored on a device arrived in the fleet store once, reports the CPU cost of publishing
per interval (from each device's ``<outbox>.stats.json``), and screenshots the fleet page in a
headless Chromium when one is installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emoedge.benchmarks.machine import machine_info
from emoedge.fleet import FleetStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def start_mosquitto(folder: Path, max_queued: int = 100_000,
                    extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """Mosquitto on a free port of 127.0.0.1 with ``max_queued`` messages per session (and ``extra``
    configuration lines); (process, ``mqtt://127.0.0.1:PORT/fleet``)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise RuntimeError("no mosquitto on this machine: apt-get install mosquitto, or give --mqtt URL")
    port = _free_port()
    conf = folder / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             f"log_dest file {folder / 'mosquitto.log'}", f"max_queued_messages {max_queued}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return proc, f"mqtt://127.0.0.1:{port}/fleet"


def screenshot(url: str, out: Path, size: str = "1200,1500") -> Path | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        return None
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                    f"--user-data-dir={out.parent / '.chromium-profile'}", f"--screenshot={out}",
                    f"--window-size={size}", url], capture_output=True, timeout=120)
    shutil.rmtree(out.parent / ".chromium-profile", ignore_errors=True)
    return out if out.is_file() else None


def _interval_ids(db_path: Path) -> list[str]:
    """The interval ids a device's SQLite file holds."""
    db = sqlite3.connect(db_path)
    ids = [r[0] for r in db.execute("SELECT interval_id FROM intervals")]
    db.close()
    return ids


def _start_device(k: int, work: Path, source: str | None, model: str, interval_s: float, mqtt: str, rooms: int,
                  env: dict) -> tuple[str, subprocess.Popen]:
    """Device ``k``: ``emoedge run`` on the looped source, publishing to ``mqtt``, its files in ``work``."""
    name = f"dev-{k:02d}"
    cmd = [sys.executable, "-m", "emoedge", "-q", "run", "--source", source or "demo", "--loop", "--realtime",
           "--interval-s", str(interval_s), "--model", model, "--threads", "1", "--mqtt", mqtt, "--mqtt-device",
           name, "--mqtt-room", f"room-{k % rooms + 1}", "--db", str(work / f"{name}.sqlite"),
           "--summary-json", str(work / f"{name}.summary.json")]
    return name, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _stop_devices(procs: list[tuple[str, subprocess.Popen]]) -> tuple[dict[str, int], dict[str, str]]:
    """SIGTERM every device (a graceful stop: the last interval, then the flush) and wait for each;
    returns the exit codes and the stderr tails of those that did not exit 0."""
    for _, p in procs:
        p.send_signal(signal.SIGTERM)
    codes, errors = {}, {}
    for name, p in procs:
        _, err = p.communicate(timeout=120)
        codes[name] = p.returncode
        if p.returncode != 0:
            errors[name] = err[-800:]
    return codes, errors


def _device_record(work: Path, name: str, code: int) -> dict:
    """What a stopped device stored and reported: its intervals, exit code, MQTT statistics, FPS, frames."""
    stats_path = work / f"{name}.mqtt-outbox.stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    summary_path = work / f"{name}.summary.json"
    summ = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"intervals": len(_interval_ids(work / f"{name}.sqlite")), "exit_code": code, "mqtt": stats,
            "fps": summ.get("fps"), "frames": summ.get("frames")}


def _stop_serve(serve: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM ``emoedge fleet serve`` (killed after 30 s); its stdout and stderr."""
    serve.send_signal(signal.SIGTERM)
    try:
        return serve.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        serve.kill()
        return serve.communicate()


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def bench_fleet(out: Path, devices: int = 10, seconds: float = 60.0, source: str | None = None, model: str = "fast",
                interval_s: float = 1.0, mqtt: str | None = None, rooms: int = 3) -> dict:
    import tempfile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="emoedge-fleet-"))    # the devices' and the store's files; removed after
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    broker = None
    if mqtt is None:
        broker, mqtt = start_mosquitto(work)
    http_port = _free_port()
    store_path = work / "fleet.sqlite"
    serve = subprocess.Popen([sys.executable, "-m", "emoedge", "fleet", "serve", "--mqtt", mqtt, "--db",
                              str(store_path), "--http-port", str(http_port), "--client-id",
                              f"emoedge-fleet-bench-{http_port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    procs = []
    try:
        _wait_port(http_port, 30)
        t0 = time.time()
        for k in range(devices):
            procs.append(_start_device(k, work, source, model, interval_s, mqtt, rooms, env))
        time.sleep(seconds)
        shot = screenshot(f"http://127.0.0.1:{http_port}/", out / "fleet-page.png")   # while they run
        codes, errors = _stop_devices(procs)
        wall_s = time.time() - t0
        per_device = {name: _device_record(work, name, codes[name]) for name, _ in procs}
        total_in = sum(d["intervals"] for d in per_device.values())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(FleetStore(store_path).rows()) < total_in:
            time.sleep(0.2)
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
        serve_out, serve_err = _stop_serve(serve)
        if broker is not None:
            broker.terminate()
            broker.wait(10)
    fleet = FleetStore(store_path).summary()
    stored = {r["interval_id"] for r in fleet["intervals"]}
    device_ids = set().union(*(_interval_ids(work / f"{name}.sqlite") for name in per_device))
    mqtt_stats = [d["mqtt"] for d in per_device.values() if d["mqtt"]]
    shutil.rmtree(work, ignore_errors=True)
    return {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "devices": devices, "seconds": seconds,
            "wall_s": wall_s, "interval_s": interval_s, "model": model, "source": source or "demo", "broker": mqtt,
            "intervals_in": total_in, "intervals_out": len(stored), "missing": sorted(device_ids - stored)[:20],
            "unexpected": sorted(stored - device_ids)[:20], "duplicates_dropped": fleet["counters"].get("duplicate", 0),
            "rejected": fleet["counters"].get("rejected", 0),
            "enqueue_ms_per_interval_mean": _mean([m.get("enqueue_ms_per_interval") for m in mqtt_stats]),
            "publisher_cpu_ms_per_interval_mean": _mean([m.get("publisher_cpu_ms_per_interval") for m in mqtt_stats]),
            "per_device": per_device, "errors": errors, "screenshot": str(shot) if shot else None,
            "fleet_serve_output": serve_out.strip().splitlines()[-1:] if serve_out else [],
            "fleet_serve_errors": serve_err[-800:] if serve.returncode else ""}


def write_fleet_report(res: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(res, indent=2) + "\n")
    ok = res["intervals_in"] == res["intervals_out"] and not res["missing"] and not res["unexpected"]
    lines = [f"# A fleet of {res['devices']} devices on one machine ({res['date']})", "",
             f"`emoedge bench fleet --devices {res['devices']} --seconds {res['seconds']:g} --out {out}` on "
             f"{res['machine']['cpu']} ({res['machine']['cores']} cores): {res['devices']} `emoedge run` processes on "
             f"the looped {Path(res['source']).name} (model `{res['model']}`, 1 thread each, `--realtime`, "
             f"`--interval-s {res['interval_s']:g}`), each with `--mqtt`, one Mosquitto broker and one "
             "`emoedge fleet serve` store.", "",
             f"- Intervals stored on the devices: **{res['intervals_in']}**; in the fleet store: "
             f"**{res['intervals_out']}** ({'every one, once' if ok else 'MISMATCH'}); duplicates dropped "
             f"{res['duplicates_dropped']}, rejected {res['rejected']}.",
             f"- CPU cost of publishing per interval: {res['enqueue_ms_per_interval_mean']:.2f} ms in the frame "
             f"loop (JSON + the outbox's SQLite commit), {res['publisher_cpu_ms_per_interval_mean']:.2f} ms in the "
             "publisher thread (network, acknowledgement, marking sent); mean over devices."
             if res["enqueue_ms_per_interval_mean"] is not None else "- CPU cost: no statistics (no device finished)",
             "", "| device | intervals | exit | FPS | acknowledged | unsent | frame loop ms/interval | "
                 "publisher CPU ms/interval |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, d in res["per_device"].items():
        m = d["mqtt"]
        lines.append(f"| {name} | {d['intervals']} | {d['exit_code']} | {d['fps'] or 0:.1f} | "
                     f"{m.get('acknowledged', '-')} | {m.get('unsent', '-')} | "
                     f"{m.get('enqueue_ms_per_interval', 0):.2f} | "
                     f"{m.get('publisher_cpu_ms_per_interval', 0):.2f} |")
    if res["screenshot"]:
        lines += ["", f"The fleet page (`emoedge fleet serve`, http://127.0.0.1:8090/ by default) after "
                      f"{res['seconds']:g} s, the devices still running, in headless Chromium:", "",
                  "![fleet page](fleet-page.png)"]
    md = out / "fleet.md"
    md.write_text("\n".join(lines) + "\n")
    return md
