"""A district's load on the fleet path, measured (``emoedge bench fleet --simulate N``): N lightweight
simulated devices (:mod:`emoedge.benchmarks.fleet_load_devices`: a few processes, one MQTT connection per
device, one event loop per process) publish interval summaries at ``rate_hz`` each through one Mosquitto
into K ``emoedge fleet serve`` workers (:mod:`emoedge.benchmarks.fleet_load_workers`) and one store
(PostgreSQL started here with ``db="auto"`` when it is installed and the store speaks it, else SQLite:
:mod:`emoedge.benchmarks.fleet_load_store`).

Phases: the steady run (``seconds``; with ``kill_worker_at`` worker 0 is SIGKILLed then and restarted
``restart_after_s`` later), then the outage burst (``burst``: the workers stopped, the devices publish
``burst`` intervals in all into the broker's queues for the workers' persistent sessions, the workers
restarted and timed until the store holds them all), then the page timing (on a store pre-filled with
``prefill_rows`` when asked). Each phase is accounted exactly once (:mod:`.fleet_load_stats`): what the
broker acknowledged to the devices against what the store holds, by interval id. The report is
:mod:`emoedge.benchmarks.fleet_load_report`."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from emoedge.benchmarks import fleet_load_store as st
from emoedge.benchmarks.fleet_load_devices import read_side_table, serve
from emoedge.benchmarks.fleet_load_page import measure_pages, prefill_store
from emoedge.benchmarks.fleet_load_report import targets
from emoedge.benchmarks.fleet_load_stats import account, lag_stats, per_interval_ms, proc_cpu_s, rate_per_s
from emoedge.benchmarks.fleet_load_workers import Worker, has_postgres, has_share_group, reap, start_broker
from emoedge.benchmarks.machine import machine_info
from emoedge.core.errors import BadInputError

DEVICES_PER_PROCESS = 250


@dataclass(frozen=True)
class LoadConfig:
    devices: int
    rate_hz: float = 1.0
    seconds: float = 300.0
    workers: int = 1
    db: str = "auto"                    # a SQLite path, a postgresql:// URL, or auto
    burst: int = 0
    kill_worker_at_s: float | None = None
    restart_after_s: float = 3.0
    prefill_rows: int = 0
    device_processes: int | None = None
    rooms: int = 10
    drain_timeout_s: float = 120.0

    def check(self) -> None:
        """Refuse what cannot run (BadInputError, exit 2), naming the option."""
        if not 1 <= self.devices <= 100_000:
            raise BadInputError(f"--simulate {self.devices}: give 1 to 100000 devices")
        if not 0 < self.rate_hz <= 100:
            raise BadInputError(f"--rate-hz {self.rate_hz:g}: give a rate above 0 and at most 100 per device")
        if min(self.seconds, self.burst, self.prefill_rows, self.restart_after_s) < 0 or not 1 <= self.workers <= 32:
            raise BadInputError("--seconds, --burst, --prefill-rows, --restart-after must be >= 0 and --workers "
                                "1 to 32")
        if self.kill_worker_at_s is not None and not 0 <= self.kill_worker_at_s < self.seconds:
            raise BadInputError(f"--kill-worker-at {self.kill_worker_at_s:g}: must fall within --seconds "
                                f"{self.seconds:g}")
        if self.workers > 1 and not has_share_group():
            raise BadInputError(f"--workers {self.workers}: this revision's fleet serve has no --share-group; "
                                "run with --workers 1")


def resolve_db(db: str, work: Path) -> tuple[str, st.LocalPostgres | None]:
    """The store to use and the PostgreSQL server started for it (``auto``), if any."""
    if st.is_postgres(db) and not has_postgres():
        raise BadInputError(f"--db {db.split('@')[-1]}: this revision's fleet serve has no PostgreSQL store")
    if db != "auto":
        return db, None
    bindir = st.pg_bindir()
    if bindir is not None and has_postgres():
        try:
            import psycopg  # noqa: F401
        except ImportError:
            bindir = None
    if bindir is None or not has_postgres():
        return str(work / "fleet.sqlite"), None
    server = st.LocalPostgres(bindir).start()
    return server.url, server


class Devices:
    """The device processes: commands to all, answers gathered (an error from one stops the bench)."""

    def __init__(self, names: list[str], mqtt: str, cfg: LoadConfig, work: Path):
        ctx = multiprocessing.get_context("spawn")
        n = cfg.device_processes or min(os.cpu_count() or 1, max(1, math.ceil(len(names) / DEVICES_PER_PROCESS)))
        self.side = [work / f"published-{p}" for p in range(n)]
        self.pipes, self.procs = [], []
        for p in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(child, names[p::n], mqtt, cfg.rate_hz, cfg.rooms, p,
                                                   str(self.side[p])), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def send(self, *cmds: tuple) -> None:
        for pipe, cmd in zip(self.pipes, cmds if len(cmds) > 1 else cmds * len(self.pipes)):
            pipe.send(cmd)

    def gather(self) -> list[dict]:
        try:
            answers = [pipe.recv() for pipe in self.pipes]
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"a simulated device process died: {exc!r}") from exc
        errors = [a["error"] for a in answers if "error" in a]
        if errors:
            raise RuntimeError(f"simulated devices failed: {errors[0]}")
        return answers

    def command(self, *cmds: tuple) -> list[dict]:
        self.send(*cmds)
        return self.gather()

    def published(self, phase: str) -> dict[str, int]:
        return read_side_table([Path(f"{p}.{phase}") for p in self.side])

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p.pid) or 0.0 for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()


class Rig:
    """Broker, store, workers and devices of one bench run, and their CPU readings."""

    def __init__(self, cfg: LoadConfig, work: Path):
        self.cfg, self.work = cfg, work
        self.tag = uuid.uuid4().hex[:6]
        self.prefix = f"ld{self.tag}-"               # the simulated devices' names: ld<tag>-00001 ...
        self.earlier: set[str] = set()               # interval ids published in the phases done
        self.broker, self.mqtt = start_broker(work, max_queued=max(100_000, 2 * cfg.burst))
        self.devices: Devices | None = None
        try:
            self.db, self.pg = resolve_db(cfg.db, work)
        except BaseException:
            self.broker.terminate()
            self.broker.wait(10)
            raise
        group = f"emoedge-load-{self.tag}" if has_share_group() else None
        self.group = group
        self.workers = [Worker(k, self.mqtt, self.db, work, group, self.tag) for k in range(cfg.workers)]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: workers (every life), broker, device processes, PostgreSQL (with its exited backends)."""
        pg = sum(proc_cpu_s(pid, children=(k == 0)) or 0.0 for k, pid in enumerate(self.pg.pids())) if self.pg else 0
        return {"workers_s": sum(w.cpu_now_s() for w in self.workers), "broker_s": proc_cpu_s(self.broker.pid) or 0.0,
                "devices_s": self.devices.cpu_s() if self.devices else 0.0, "postgresql_s": pg}

    def wait_stored(self, want: int, baseline: int) -> tuple[int, float]:
        """Poll the store until it holds ``want`` rows over ``baseline`` (or nothing new for drain_timeout_s);
        (rows over baseline, the wall clock when the last arrived)."""
        last, last_t = -1, time.time()
        while True:
            n = st.row_count(self.db, self.prefix) - baseline
            if n != last:
                last, last_t = n, time.time()
            if n >= want or time.time() - last_t > self.cfg.drain_timeout_s:
                return n, last_t
            time.sleep(0.2)

    def close(self) -> dict[str, float]:
        """Stop everything; the broker's CPU seconds over its life."""
        if self.devices:
            with contextlib.suppress(RuntimeError, OSError, EOFError):
                self.devices.command(("close",))
            self.devices.stop()
        for w in self.workers:
            w.stop()
        broker_s = 0.0
        if self.broker.poll() is None:
            self.broker.terminate()
            broker_s = reap(self.broker, 10)
        if self.pg:
            self.pg.stop()
        return {"broker_s": broker_s}


def _cpu_delta(after: dict, before: dict, intervals: int) -> dict:
    out = {k: round(after[k] - before[k], 3) for k in after}
    for k in ("workers", "broker", "postgresql", "devices"):
        out[f"{k}_ms_per_interval"] = per_interval_ms(out[f"{k}_s"], intervals)
    return out


def _phase_result(rig: Rig, published: dict[str, int], earlier: set[str], cpu0: dict, cpu1: dict) -> dict:
    """Accounting, lag, rate and CPU of a phase: the simulated devices' rows in the store, less those of the
    phases before (``earlier``), against what the phase published."""
    rows = [(i, t) for i, t in st.stored(rig.db, rig.prefix) if i not in earlier]
    mine = [(i, t) for i, t in rows if i in published]
    acc = account(set(published), [i for i, _ in rows])
    received = dict(mine)
    first = min(published.values()) if published else None
    last = max(received.values()) if received else None
    return {"accounting": acc.to_dict(), "lag": lag_stats(published, received).to_dict(),
            "ingest_rate_per_s": rate_per_s(len(received), first, last),
            "cpu": _cpu_delta(cpu1, cpu0, len(received))}


def steady_phase(rig: Rig) -> dict:
    """The devices at rate_hz for ``seconds`` (a worker killed and restarted on the way when asked)."""
    cfg = rig.cfg
    baseline = st.row_count(rig.db, rig.prefix)
    cpu0 = rig.cpu()
    rig.devices.send(("run", cfg.seconds))
    t0 = time.monotonic()
    killed = None
    if cfg.kill_worker_at_s is not None:
        time.sleep(max(0.0, t0 + cfg.kill_worker_at_s - time.monotonic()))
        rig.workers[0].kill()
        killed = {"worker": 0, "at_s": round(time.monotonic() - t0, 2), "exit_code": rig.workers[0].exit_codes[-1]}
        time.sleep(cfg.restart_after_s)
        rig.workers[0].start()
        killed["restarted_at_s"] = round(time.monotonic() - t0, 2)
    stats = rig.devices.gather()
    published = rig.devices.published("run")
    n, _ = rig.wait_stored(len(published), baseline)
    rig.earlier |= set(published)
    res = _phase_result(rig, published, set(), cpu0, rig.cpu())
    return {**res, "seconds": cfg.seconds, "killed": killed, "device_stats": _sum_stats(stats)}


def burst_phase(rig: Rig) -> dict:
    """The outage: workers stopped, ``burst`` intervals into their queues, workers restarted; the drain timed."""
    cfg = rig.cfg
    baseline = st.row_count(rig.db, rig.prefix)
    for w in rig.workers:
        w.stop()
    n_proc = len(rig.devices.pipes)
    shares = [cfg.burst // n_proc + (1 if p < cfg.burst % n_proc else 0) for p in range(n_proc)]
    stats = rig.devices.command(*[("burst", m) for m in shares])
    published = rig.devices.published("burst")
    cpu0 = rig.cpu()
    t_restart = time.time()
    for w in rig.workers:
        w.start()
    n, last_t = rig.wait_stored(len(published), baseline)
    res = _phase_result(rig, published, rig.earlier, cpu0, rig.cpu())
    rig.earlier |= set(published)
    res["drain_s"] = round(last_t - t_restart, 3)
    res["drain_rate_per_s"] = round(n / (last_t - t_restart), 1) if last_t > t_restart else None
    del res["lag"], res["ingest_rate_per_s"]        # queued on purpose: the drain is the measure
    return {**res, "intervals": cfg.burst, "device_stats": _sum_stats(stats)}


def _sum_stats(stats: list[dict]) -> dict:
    return {k: sum(s[k] for s in stats) for k in stats[0]} if stats else {}


def _store_info(rig: Rig, errors: list[str]) -> dict:
    """The store's kind, counters and size (a store that cannot be read is said in ``errors``)."""
    info = {"kind": "postgresql" if st.is_postgres(rig.db) else "sqlite", "started_here": rig.pg is not None,
            "counters": st.counters(rig.db), "size_bytes": None}
    try:
        info["size_bytes"] = st.size_bytes(rig.db)
    except Exception as exc:   # noqa: BLE001 (a store gone at the end: said, and the rest still stopped)
        errors.append(f"the store's size could not be read: {type(exc).__name__}: {exc}")
    return info


def bench_fleet_load(cfg: LoadConfig) -> dict:
    """Run the phases (see the module's text); the result the report is written from."""
    cfg.check()
    work = Path(tempfile.mkdtemp(prefix="emoedge-fleet-load-"))
    try:
        return _bench(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(cfg: LoadConfig, work: Path) -> dict:
    rig = Rig(cfg, work)
    res: dict = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "config": asdict(cfg), "errors": [], "prefill": None, "connected": None, "steady": None,
                 "burst": None, "page": None}
    try:
        res["prefill"] = prefill_store(rig.db, cfg.prefill_rows) if cfg.prefill_rows else None
        for w in rig.workers:
            w.start()
        names = [f"{rig.prefix}{k:05d}" for k in range(cfg.devices)]
        rig.devices = Devices(names, rig.mqtt, cfg, work)
        res["connected"] = sum(a["connected"] for a in rig.devices.command(("connect",)))
        if res["connected"] < cfg.devices:
            res["errors"].append(f"only {res['connected']} of {cfg.devices} simulated devices connected in 60 s")
        res["steady"] = steady_phase(rig) if cfg.seconds > 0 else None
        res["burst"] = burst_phase(rig) if cfg.burst > 0 else None
        res["page"] = measure_pages(rig.db, rig.workers[0].http_port, cfg.prefill_rows)
        if res["page"].get("errors"):
            res["page"]["worker_log_tail"] = rig.workers[0].log_tail(1500)
            if cfg.prefill_rows:
                res["errors"].append(f"the page could not be timed: {res['page']['errors']}")
    except RuntimeError as exc:
        res["errors"].append(str(exc))
    finally:
        for w in rig.workers:
            w.stop()
        res["store"] = _store_info(rig, res["errors"])
        res["broker_life_cpu_s"] = rig.close()["broker_s"]
        res["workers"] = {"count": cfg.workers, "share_group": rig.group, "lives": [w.lives for w in rig.workers],
                          "exit_codes": [w.exit_codes for w in rig.workers],
                          "log_tails": {w.k: w.log_tail(400) for w in rig.workers if any(w.exit_codes[-1:])}}
    res["targets"] = targets(res)
    return res
