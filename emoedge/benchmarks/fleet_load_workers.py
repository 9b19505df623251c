"""The server side of ``emoedge bench fleet --simulate``: one Mosquitto on 127.0.0.1 (queues sized for
the burst, file descriptors for a thousand devices) and K ingest workers, each an ``emoedge fleet serve``
process with its own persistent session (a stable client id, so a killed worker that is restarted picks up
what the broker queued for it), in one MQTT shared subscription group when there is more than one
(``fleet serve --share-group``). A worker's CPU seconds are read from ``/proc`` before it stops and
summed over its restarts."""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from emoedge.benchmarks.fleet_load_stats import proc_cpu_s
from emoedge.benchmarks.fleet_sim import _free_port, _wait_port, start_mosquitto


def raise_open_files(want: int = 8192) -> int:
    """The soft limit on open files raised towards ``want`` (children inherit it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < new:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def start_broker(folder: Path, max_queued: int = 100_000) -> tuple[subprocess.Popen, str]:
    """Mosquitto on a free port of 127.0.0.1 (fleet_sim's, with no byte limit on a session's queue and no
    Nagle delay); (process, ``mqtt://127.0.0.1:PORT/fleet``)."""
    raise_open_files()
    return start_mosquitto(folder, max_queued, ("max_queued_bytes 0", "set_tcp_nodelay true"))


@functools.lru_cache(maxsize=1)
def serve_help() -> str:
    """``emoedge fleet serve --help``: which options this revision's store has (shared groups, PostgreSQL)."""
    out = subprocess.run([sys.executable, "-m", "emoedge", "fleet", "serve", "--help"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return out.stdout


def has_share_group() -> bool:
    return "--share-group" in serve_help()


def has_postgres() -> bool:
    """This revision's store takes a postgresql:// URL (its PostgreSQL backend is there)."""
    import importlib.util

    return importlib.util.find_spec("emoedge.fleet.pg_store") is not None or "postgres" in serve_help().lower()


def reap(proc: subprocess.Popen, timeout_s: float) -> float:
    """Wait for ``proc`` (SIGKILL after ``timeout_s``); its CPU seconds over its whole life (``wait4``'s usage,
    the shutdown included)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            deadline = time.monotonic() + 30
        time.sleep(0.02)


class Worker:
    """One ``emoedge fleet serve`` (k-th of the group): start, SIGKILL, SIGTERM; CPU over its lives."""

    def __init__(self, k: int, mqtt: str, db: str, work: Path, group: str | None, tag: str):
        self.k, self.mqtt, self.db, self.work, self.group = k, mqtt, db, work, group
        self.client_id = f"emoedge-fleet-load-{tag}-w{k}"
        self.proc: subprocess.Popen | None = None
        self.http_port: int | None = None
        self.cpu_s = 0.0            # of the lives that ended
        self.lives = 0
        self.exit_codes: list[int] = []

    def start(self, timeout_s: float = 60.0) -> Worker:
        self.http_port = _free_port()
        cmd = [sys.executable, "-m", "emoedge", "fleet", "serve", "--mqtt", self.mqtt, "--db", self.db,
               "--client-id", self.client_id, "--http-port", str(self.http_port)]
        if self.group:
            cmd += ["--share-group", self.group]
        with open(self.work / f"worker-{self.k}.log", "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True,
                                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.lives += 1
        try:
            _wait_port(self.http_port, timeout_s)       # listening: its subscriber has connected and subscribed
        except RuntimeError:
            raise RuntimeError(f"fleet serve worker {self.k} did not start: {self.log_tail()}") from None
        time.sleep(0.5)                                  # the SUBACK
        return self

    def log_tail(self, chars: int = 800) -> str:
        path = self.work / f"worker-{self.k}.log"
        return path.read_text()[-chars:] if path.is_file() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_now_s(self) -> float:
        """CPU seconds over every life so far, the running one included."""
        live = proc_cpu_s(self.proc.pid) if self.running else None
        return self.cpu_s + (live or 0.0)

    def _end(self, sig: int, timeout_s: float) -> None:
        if not self.running:
            return
        self.proc.send_signal(sig)
        self.cpu_s += reap(self.proc, timeout_s)
        self.exit_codes.append(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye; what it had not acknowledged stays queued for its session."""
        self._end(signal.SIGKILL, 10)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (a clean stop), killed after ``timeout_s``."""
        self._end(signal.SIGTERM, timeout_s)
