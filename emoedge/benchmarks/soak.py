"""Soak and fault benchmark: does the runtime hold its memory over a long looped run, and do its
records survive a SIGKILL, a full disk and the free-space floor?

* Soak: the runtime pipeline (``Pipeline(RuntimeConfig(loop=True, max_frames=N, ...))``) with its
  real sinks (JSON Lines, SQLite) plus :class:`RssSampler`, a sink that reads ``/proc/self/statm``
  every K frames; each N in a fresh process. Reported per run: peak RSS (VmHWM), RSS at the start
  and end of the measured part (after a warm-up), the least-squares slope in bytes/frame over
  the measured part, and FPS. Target (issue 14): N=20,000 has the same peak RSS as N=2,000
  within 2 MB.
* SIGKILL: ``emoedge run --loop --db X`` is frozen (SIGSTOP) once X holds >= 3 intervals, the
  committed intervals are read, the run is SIGKILLed; X must pass ``PRAGMA integrity_check`` and
  hold exactly those intervals; a second run on the same files must open them and append.
* Disk full: the same run writes into a small tmpfs with ``--min-free-mb 0`` (the real ENOSPC
  path). A ledger (the real CLI, with the sinks' write methods wrapped to log every record they
  reported written) tells what the files must hold; checked: exit code 4, stderr names the file,
  integrity_check, the DB holds exactly the intervals reported written, every JSONL line parses.
  Needs root (``mount -t tmpfs``); skipped with the reason otherwise.
* Floor: ``--min-free-mb`` above the free space on a normal disk: nothing written, exit 4, a message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emoedge.edge.sinks import Sink

REPO = Path(__file__).resolve().parents[2]
CLIP = Path("media") / "short_hamilton_clip.mp4"
SAMPLES_PER_RUN = 500          # the same sampler size for every N, so its own memory is equal
TARGET_MB = 2.0


# -- soak ---------------------------------------------------------------------------------------
def shared_dir() -> Path:
    return Path(os.environ.get("EMOEDGE_SHARED", REPO.parent / "shared")).resolve()


def default_source() -> str:
    """The shared test clip when present, else the ``demo`` photo."""
    clip = shared_dir() / CLIP
    return str(clip) if clip.is_file() else "demo"


def statm() -> tuple[int, int]:
    """This process's resident set now and its anonymous part (heap, stacks), in bytes, from
    ``/proc/self/statm``: resident minus shared (file-backed pages: code of the libraries, which
    the kernel maps in and drops as it likes, so they vary between runs of the same program)."""
    with open("/proc/self/statm", "rb") as fh:
        f = fh.read().split()
    page = os.sysconf("SC_PAGE_SIZE")
    return int(f[1]) * page, (int(f[1]) - int(f[2])) * page


def rss_bytes() -> int:
    """This process's resident set now (``/proc/self/statm``, field 2, in pages)."""
    return statm()[0]


def vmhwm_bytes() -> int:
    """This process's peak resident set (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler(Sink):
    """A sink that samples RSS at the run's start and every ``every`` frames: (frame, RSS bytes,
    anonymous RSS bytes); it also notes the sample at which the process peak (VmHWM) last rose."""

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.frames = 0
        self.samples: list[tuple[int, int, int]] = []
        self.hwm = 0
        self.hwm_frame = 0              # the frame of the sample at which VmHWM last rose

    def _sample(self) -> None:
        self.samples.append((self.frames, *statm()))
        h = vmhwm_bytes()
        if h > self.hwm:
            self.hwm, self.hwm_frame = h, self.frames

    def on_start(self, run) -> None:
        self._sample()

    def on_frame(self, frame, tracks, scale) -> None:
        self.frames += 1
        if self.frames % self.every == 0:
            self._sample()


def fit_slope(samples: Sequence[Sequence[int]], warmup: float = 0.15, column: int = 1) -> dict:
    """Least-squares RSS slope (bytes/frame) over the samples after the first ``warmup`` fraction
    of frames, with the RSS at the start and end of that measured part (``column`` of the samples:
    1 RSS, 2 anonymous RSS)."""
    a = np.asarray([(r[0], r[column]) for r in samples], dtype=np.float64).reshape(-1, 2)
    if len(a) == 0:
        raise ValueError("no RSS samples")
    last = a[:, 0].max()
    m = a[a[:, 0] >= warmup * last]
    if len(m) < 2:
        m = a[-2:] if len(a) >= 2 else a
    slope = float(np.polyfit(m[:, 0], m[:, 1], 1)[0]) if len(m) >= 2 and np.ptp(m[:, 0]) > 0 else 0.0
    return {"warmup_frames": int(m[0, 0]), "measured_samples": len(m), "slope_b_per_frame": slope,
            "rss_start_mb": float(m[0, 1] / 2**20), "rss_end_mb": float(m[-1, 1] / 2**20),
            "rss_max_measured_mb": float(m[:, 1].max() / 2**20)}


@dataclass
class SoakRun:
    frames_asked: int
    status: str                        # ok | failed
    reason: str = ""
    source: str = ""
    model: str = ""
    frames: int = 0
    fps: float = 0.0
    duration_s: float = 0.0
    peak_rss_mb: float = 0.0           # the process's peak: max(VmHWM, every sample); model loading included
    rss_after_init_mb: float = 0.0     # at the run's start (everything loaded, before the first frame)
    rss_start_mb: float = 0.0          # first sample after the warm-up
    rss_end_mb: float = 0.0            # last sample
    rss_max_measured_mb: float = 0.0
    peak_at_frame: int = 0             # VmHWM reached its top by this sample (-1: after the last frame)
    slope_b_per_frame: float = 0.0
    warmup_frames: int = 0
    sample_every: int = 0
    intervals_written: int = 0
    events_written: int = 0
    records_lost: int = 0
    exit_code: int = 0
    wall_s: float = 0.0
    anon_after_init_mb: float = 0.0    # anonymous RSS (heap, stacks: what a leak grows), same points
    anon_start_mb: float = 0.0
    anon_end_mb: float = 0.0
    anon_max_measured_mb: float = 0.0
    anon_slope_b_per_frame: float = 0.0
    samples: list = field(default_factory=list)   # [frame, RSS bytes, anonymous RSS bytes]

    def to_dict(self, samples: bool = True) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples")
        return d


def _soak_child(args: dict) -> dict:
    """In a fresh process: the pipeline for ``max_frames`` looped frames with real sinks + the sampler."""
    from emoedge.edge.config import RuntimeConfig
    from emoedge.edge.pipeline import Pipeline
    from emoedge.edge.sinks import DiskFloor, JsonlSink, SqliteSink

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emoedge-soak-") as tmp:
        cfg = RuntimeConfig(source=args["source"], loop=True, max_frames=args["frames"], model=args["model"],
                            detector="haar", budget_ms=args["budget_ms"], status_every_s=0,
                            db=str(Path(tmp) / "soak.sqlite"), events=str(Path(tmp) / "soak.jsonl"),
                            interval_s=args["interval_s"])
        floor = DiskFloor(cfg.min_free_mb)
        sampler = RssSampler(max(1, args["frames"] // SAMPLES_PER_RUN))
        sinks = [JsonlSink(cfg.events, floor), SqliteSink(cfg.db, floor, cfg.retention_days), sampler]
        s = Pipeline(cfg, sinks=sinks).run()
    end_hwm = vmhwm_bytes()                 # after the sinks are closed
    peak = max([end_hwm] + [r[1] for r in sampler.samples])   # VmHWM lags statm by a few pages
    # where the peak was reached: by the sample at frame F (between F - every and F), or after the last frame
    peak_at = sampler.hwm_frame if end_hwm <= sampler.hwm else -1
    return {"frames": s.frames, "fps": s.fps, "duration_s": s.duration_s, "peak_rss_bytes": peak,
            "samples": sampler.samples, "sample_every": sampler.every, "peak_at_frame": peak_at,
            "intervals_written": s.intervals_written,
            "events_written": s.events_written, "records_lost": s.records_lost, "exit_code": s.exit_code,
            "source": s.source, "model": s.model, "wall_s": time.perf_counter() - t0}


def _python_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def soak_run(frames: int, source: str | None = None, model: str = "default", budget_ms: float = 66.0,
             interval_s: float = 5.0, warmup: float = 0.15, timeout_s: float = 7200) -> SoakRun:
    """One soak run of ``frames`` looped frames in a fresh process."""
    source = source or default_source()
    args = {"frames": int(frames), "source": source, "model": model, "budget_ms": budget_ms,
            "interval_s": interval_s}
    code = ("import json, sys; from emoedge.benchmarks.soak import _soak_child; "
            "print('RESULT ' + json.dumps(_soak_child(json.loads(sys.argv[1]))))")
    try:
        r = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=False,
                           timeout=timeout_s, env=_python_env())
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if r.returncode != 0 or not lines:
            err = r.stderr.strip().splitlines()
            raise RuntimeError(err[-1] if err else f"exit {r.returncode}")
        d = json.loads(lines[-1][len("RESULT "):])
        fit = fit_slope(d["samples"], warmup)
        anon = fit_slope(d["samples"], warmup, column=2)
    except Exception as exc:  # one failed run is a row with its reason
        return SoakRun(int(frames), "failed", f"{type(exc).__name__}: {str(exc)[:300]}", source, model)
    after_init = d["samples"][0][1] / 2**20 if d["samples"] else 0.0
    return SoakRun(int(frames), "ok", "", d["source"], Path(d["model"]).name, d["frames"], d["fps"],
                   d["duration_s"], d["peak_rss_bytes"] / 2**20, after_init, fit["rss_start_mb"], fit["rss_end_mb"],
                   fit["rss_max_measured_mb"], d.get("peak_at_frame", 0), fit["slope_b_per_frame"],
                   fit["warmup_frames"], d["sample_every"],
                   d["intervals_written"], d["events_written"], d["records_lost"], d["exit_code"], d["wall_s"],
                   anon_after_init_mb=d["samples"][0][2] / 2**20, anon_start_mb=anon["rss_start_mb"],
                   anon_end_mb=anon["rss_end_mb"], anon_max_measured_mb=anon["rss_max_measured_mb"],
                   anon_slope_b_per_frame=anon["slope_b_per_frame"], samples=d["samples"])


def soak_target(runs: Sequence[SoakRun], tolerance_mb: float = TARGET_MB) -> dict:
    """The issue's target: the longest run's peak RSS equals the shortest's within ``tolerance_mb``
    (both the process peak, VmHWM, and the highest RSS sampled after the warm-up)."""
    ok = [r for r in runs if r.status == "ok"]
    if len(ok) < 2:
        return {"status": "not run", "reason": "needs two successful runs"}
    short, long_ = min(ok, key=lambda r: r.frames), max(ok, key=lambda r: r.frames)
    d_peak = long_.peak_rss_mb - short.peak_rss_mb
    d_steady = long_.rss_max_measured_mb - short.rss_max_measured_mb
    d_anon = long_.anon_max_measured_mb - short.anon_max_measured_mb
    passed = abs(d_peak) <= tolerance_mb and abs(d_steady) <= tolerance_mb
    return {"status": "pass" if passed else "fail", "short_frames": short.frames, "long_frames": long_.frames,
            "peak_rss_diff_mb": d_peak, "steady_rss_max_diff_mb": d_steady, "anon_max_diff_mb": d_anon,
            "tolerance_mb": tolerance_mb, "long_slope_b_per_frame": long_.slope_b_per_frame,
            "long_anon_slope_b_per_frame": long_.anon_slope_b_per_frame,
            "long_growth_projected_mb": long_.slope_b_per_frame * long_.frames / 2**20,
            "line": (f"{'PASS' if passed else 'FAIL'}: peak RSS {long_.frames} frames {long_.peak_rss_mb:.1f} MB vs "
                     f"{short.frames} frames {short.peak_rss_mb:.1f} MB: {d_peak:+.2f} MB (steady-state max "
                     f"{d_steady:+.2f} MB, anonymous {d_anon:+.2f} MB; limit {tolerance_mb:g} MB); slope "
                     f"{long_.slope_b_per_frame:+.1f} B/frame (anonymous {long_.anon_slope_b_per_frame:+.1f})")}


# -- fault helpers --------------------------------------------------------------------------------
def run_command(args: Sequence[str]) -> list[str]:
    """``emoedge run ARGS`` as this Python runs it."""
    return [sys.executable, "-m", "emoedge", "run", *args]


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)


def db_intervals(db: Path, read_only: bool = True) -> dict[str, int]:
    """interval_id -> its number of label shares; {} while the file or its schema is not there."""
    if not Path(db).is_file():
        return {}
    con = _ro(db) if read_only else sqlite3.connect(str(db), timeout=2.0)
    try:
        rows = con.execute("SELECT i.interval_id, (SELECT COUNT(*) FROM interval_shares s WHERE s.interval_id = i.id)"
                           " FROM intervals i").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        con.close()
    return dict(rows)


def db_counts(db: Path) -> dict:
    con = sqlite3.connect(str(db), timeout=2.0)
    try:
        return {"integrity": con.execute("PRAGMA integrity_check").fetchone()[0],
                "runs": con.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                "intervals": con.execute("SELECT COUNT(*) FROM intervals").fetchone()[0]}
    finally:
        con.close()


def jsonl_check(path: Path) -> dict:
    """Every line of a JSON Lines file parses (no half line); counts per record type."""
    if not Path(path).is_file():
        return {"exists": False, "lines": 0, "bad_lines": 0, "ends_with_newline": True, "types": {},
                "interval_ids": []}
    data = Path(path).read_bytes()
    bad, types, ids = 0, {}, []
    lines = data.split(b"\n")
    tail = lines.pop()             # b"" when the file ends with a newline
    for ln in lines + ([tail] if tail else []):
        try:
            d = json.loads(ln)
        except ValueError:
            bad += 1
            continue
        types[d.get("type", "?")] = types.get(d.get("type", "?"), 0) + 1
        if d.get("type") == "interval":
            ids.append(d["interval_id"])
    return {"exists": True, "bytes": len(data), "lines": len(lines) + (1 if tail else 0), "bad_lines": bad,
            "ends_with_newline": not tail, "types": types, "interval_ids": ids}


def _seq(interval_id: str) -> int:
    return int(interval_id.rsplit("-", 1)[1])


def _labels_of_model(model: str) -> int | None:
    """Labels per interval share (the model's classes + 'uncertain'), from its manifest."""
    try:
        from emoedge.edge.models import read_manifest, resolve_model

        names = (read_manifest(resolve_model(model)) or {}).get("class_names")
        return len(names) + 1 if names else None
    except Exception:
        return None


# -- SIGKILL --------------------------------------------------------------------------------------
def sigkill_check(workdir: str | Path, source: str = "demo", model: str = "fast", interval_s: float = 0.5,
                  min_intervals: int = 3, timeout_s: float = 120.0) -> dict:
    """SIGKILL an ``emoedge run --loop --db`` once the DB holds ``min_intervals`` intervals."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    db, events = work / "kill.sqlite", work / "kill.jsonl"
    args = ["--source", source, "--loop", "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--no-display"]
    cmd = run_command(args)
    res: dict = {"command": "emoedge run " + " ".join(args), "status": "fail"}
    with open(work / "kill.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_python_env())
        t0 = time.monotonic()
        before: dict[str, int] = {}
        try:
            while time.monotonic() - t0 < timeout_s:
                if proc.poll() is not None:
                    res["reason"] = f"the run ended by itself (exit {proc.returncode}) before the kill"
                    return res
                try:
                    if len(db_intervals(db)) >= min_intervals:
                        break
                except sqlite3.Error:
                    pass  # the schema is being made, or a write is in progress: poll again
                time.sleep(0.05)
            else:
                res["reason"] = f"fewer than {min_intervals} intervals after {timeout_s:g} s"
                return res
            proc.send_signal(signal.SIGSTOP)      # freeze it, read what is committed, then kill it
            time.sleep(0.1)
            before = db_intervals(db)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            res["seconds_to_kill"] = round(time.monotonic() - t0, 2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    res["returncode"] = proc.returncode
    files_left = sorted(p.name for p in work.iterdir() if p.name.startswith("kill.sqlite"))
    after = db_intervals(db, read_only=False)    # opening recovers the WAL, as the next run would
    counts = db_counts(db)
    jl = jsonl_check(events)
    labels = _labels_of_model(model)
    seqs = sorted(_seq(i) for i in after)
    # a second run on the same files: opens them and appends after the killed run's records
    args2 = ["--source", source, "--model", model, "--db", str(db), "--events", str(events),
             "--interval-s", f"{interval_s:g}", "--max-frames", "30", "--no-display"]
    r2 = subprocess.run(run_command(args2), capture_output=True, text=True, env=_python_env(), timeout=300)
    after2 = db_intervals(db, read_only=False)
    jl2 = jsonl_check(events)
    res.update({
        "wal_files_left": files_left,
        "intervals_before_kill": len(before), "intervals_after_kill": len(after),
        "same_intervals": set(before) == set(after), "integrity_check": counts["integrity"],
        "contiguous": seqs == list(range(1, len(seqs) + 1)),
        "complete_rows": all(n == labels for n in after.values()) if labels else all(after.values()),
        "jsonl_lines": jl["lines"], "jsonl_bad_lines": jl["bad_lines"],
        "jsonl_intervals": len(jl["interval_ids"]),
        "jsonl_has_db_intervals": set(after) <= set(jl["interval_ids"]),
        "rerun_command": "emoedge run " + " ".join(args2), "rerun_exit": r2.returncode,
        "intervals_after_rerun": len(after2), "rerun_kept_old": set(after) <= set(after2),
        "jsonl_bad_lines_after_rerun": jl2["bad_lines"], "integrity_after_rerun": db_counts(db)["integrity"],
    })
    _verdict(res, {
        "killed with >= min intervals": len(before) >= min_intervals,
        "same intervals after the kill": res["same_intervals"], "integrity ok": counts["integrity"] == "ok",
        "contiguous, complete rows": res["contiguous"] and res["complete_rows"],
        "JSONL: no half line": jl["bad_lines"] == 0, "JSONL holds the DB's intervals": res["jsonl_has_db_intervals"],
        "next run: exit 0, appends, keeps the old": (r2.returncode == 0 and res["rerun_kept_old"]
                                                     and len(after2) > len(after)),
        "next run: integrity ok, no half line": res["integrity_after_rerun"] == "ok" and jl2["bad_lines"] == 0})
    return res


def _verdict(res: dict, checks: dict[str, bool]) -> None:
    res["checks"] = {k: bool(v) for k, v in checks.items()}
    res["failed_checks"] = [k for k, v in checks.items() if not v]
    res["status"] = "fail" if res["failed_checks"] else "pass"


# -- disk full (tmpfs) and the floor -------------------------------------------------------------------
LEDGER_RUN = r"""
import json, sys
from emoedge.edge import sinks as S
ledger = open(sys.argv[1], "a", buffering=1)
def wrap(cls, name):
    orig = getattr(cls, name)
    def method(self, item, _orig=orig, _cls=cls.__name__, _name=name):
        _orig(self, item)   # raised: not written (the pipeline counts it); returned: reported written
        ledger.write(json.dumps({"sink": _cls, "kind": _name, "id": getattr(item, "interval_id", None)}) + "\n")
    setattr(cls, name, method)
for cls in (S.JsonlSink, S.SqliteSink):
    for name in ("on_start", "on_event", "on_interval"):
        if name in cls.__dict__:
            wrap(cls, name)
import runpy; sys.argv = ["emoedge", "run", *sys.argv[2:]]; runpy.run_module("emoedge", run_name="__main__")
"""


def _ledger(path: Path) -> dict:
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
    out = {"sqlite_intervals": [r["id"] for r in recs if r["sink"] == "SqliteSink" and r["kind"] == "on_interval"],
           "sqlite_runs": sum(r["sink"] == "SqliteSink" and r["kind"] == "on_start" for r in recs),
           "jsonl_intervals": [r["id"] for r in recs if r["sink"] == "JsonlSink" and r["kind"] == "on_interval"],
           "jsonl_lines": sum(r["sink"] == "JsonlSink" for r in recs)}
    return out


def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``path``; None when done, else why not."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "mount -t tmpfs needs root (this process is not)"
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    if r.returncode != 0:
        return f"mount -t tmpfs not permitted: {r.stderr.strip() or f'exit {r.returncode}'}"
    return None


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=60)


def _check_written(db: Path, events: Path, ledger: dict, stderr: str, returncode: int, summary: dict,
                   names: tuple[Path, Path] | None = None) -> dict:
    """What a run that lost records must still get right (``names``: the paths the run used, when
    ``db`` and ``events`` are copies)."""
    db_name, events_name = names or (db, events)
    counts = db_counts(db) if db.is_file() else {"integrity": "no file", "runs": 0, "intervals": 0}
    in_db = set(db_intervals(db, read_only=False)) if db.is_file() else set()
    jl = jsonl_check(events)
    reported = set(ledger["sqlite_intervals"])
    return {
        "exit_code": returncode, "records_lost": summary.get("records_lost"),
        "intervals_stored_by_all": summary.get("intervals_written"), "write_errors": summary.get("write_errors"),
        "stderr_names_db": str(db_name) in stderr, "stderr_names_events": str(events_name) in stderr,
        "integrity_check": counts["integrity"],
        "db_intervals": len(in_db), "db_intervals_reported_written": len(reported),
        "db_missing_reported": sorted(reported - in_db), "db_unreported_extra": sorted(in_db - reported),
        "jsonl_lines": jl["lines"], "jsonl_bad_lines": jl["bad_lines"],
        "jsonl_ends_with_newline": jl["ends_with_newline"],
        "jsonl_lines_reported_written": ledger["jsonl_lines"],
        "jsonl_intervals": len(jl["interval_ids"]),
        "jsonl_intervals_reported_written": len(ledger["jsonl_intervals"]),
        "jsonl_matches_reported": jl["interval_ids"] == ledger["jsonl_intervals"],
    }


def _ledger_run(args: list[str], ledger: Path, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LEDGER_RUN, str(ledger), *args], capture_output=True, text=True,
                          env=_python_env(), timeout=timeout_s)


def disk_full_check(workdir: str | Path, size: str = "1m", source: str = "demo", model: str = "fast",
                    interval_s: float = 0.05, max_frames: int = 1500, timeout_s: float = 600) -> dict:
    """The run on a ``size`` tmpfs with ``--min-free-mb 0`` until the disk fills (then on to max_frames)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    mnt = work / "tmpfs"
    why = mount_tmpfs(mnt, size)
    if why:
        return {"status": "skipped", "reason": why}
    db, events, ledger, summ = mnt / "full.sqlite", mnt / "full.jsonl", work / "full.ledger", work / "full.summary.json"
    args = ["--source", source, "--loop", "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--min-free-mb", "0", "--max-frames", str(max_frames),
            "--no-display", "--summary-json", str(summ)]
    res: dict = {"command": f"mount -t tmpfs -o size={size} tmpfs {mnt}; emoedge run " + " ".join(args),
                 "tmpfs_size": size}
    try:
        r = _ledger_run(args, ledger, timeout_s)
        (work / "full.stderr").write_text(r.stderr)
        du = shutil.disk_usage(mnt)
        res["tmpfs_free_bytes_after"] = du.free
        res["files"] = {p.name: p.stat().st_size for p in sorted(mnt.iterdir())}
        summary = json.loads(summ.read_text()) if summ.is_file() else {}
        # check copies on the normal disk: opening the DB in place would try to checkpoint into a full disk
        copy = work / "full-copy"
        copy.mkdir(exist_ok=True)
        for p in mnt.iterdir():
            if p.name.startswith("full.sqlite") and not p.name.endswith("-shm"):
                shutil.copy2(p, copy / p.name)
        shutil.copy2(events, copy / events.name) if events.is_file() else None
        chk = _check_written(copy / db.name, copy / events.name, _ledger(ledger), r.stderr, r.returncode, summary,
                             names=(db, events))
        res.update(chk)
        res["stderr_tail"] = [ln for ln in r.stderr.splitlines() if "ERROR" in ln or "exit" in ln or "LOST" in ln][:8]
        res["frames"] = summary.get("frames")
        filled = du.free < 64 * 1024 or res["records_lost"]
        _verdict(res, {
            "the disk filled": filled, "exit code 4": r.returncode == 4,
            "stderr names the file": chk["stderr_names_db"] or chk["stderr_names_events"],
            "integrity ok": chk["integrity_check"] == "ok",
            "DB holds every interval reported written": not chk["db_missing_reported"],
            "DB holds nothing unreported": not chk["db_unreported_extra"],
            "JSONL: no half line": chk["jsonl_bad_lines"] == 0 and chk["jsonl_ends_with_newline"],
            "JSONL intervals = those reported written": chk["jsonl_matches_reported"]})
    finally:
        umount(mnt)
        res["unmounted"] = not os.path.ismount(mnt)
    return res


def floor_check(workdir: str | Path, source: str = "demo", model: str = "fast", interval_s: float = 0.2,
                max_frames: int = 40, timeout_s: float = 300) -> dict:
    """``--min-free-mb`` above the free space of a normal disk: nothing written, exit 4, a clear message."""
    work = Path(workdir) / "floor"
    work.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(work).free / 2**20
    floor = int(free_mb + 1024)
    db, events, ledger, summ = work / "floor.sqlite", work / "floor.jsonl", work / "floor.ledger", work / "s.json"
    args = ["--source", source, "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--min-free-mb", str(floor), "--max-frames", str(max_frames),
            "--no-display", "--summary-json", str(summ)]
    r = _ledger_run(args, ledger, timeout_s)
    summary = json.loads(summ.read_text()) if summ.is_file() else {}
    chk = _check_written(db, events, _ledger(ledger), r.stderr, r.returncode, summary)
    counts = db_counts(db) if db.is_file() else {"runs": 0, "intervals": 0}
    msg = [ln for ln in r.stderr.splitlines() if "below the floor" in ln]
    res = {"command": "emoedge run " + " ".join(args), "free_mb": round(free_mb), "min_free_mb": floor, **chk,
           "db_runs": counts["runs"], "message": msg[0] if msg else None,
           "files_made": sorted(p.name for p in work.iterdir()
                                if p.name.startswith("floor.") and p.suffix != ".ledger")}
    _verdict(res, {"exit code 4": r.returncode == 4, "no JSONL line": chk["jsonl_lines"] == 0,
                   "no DB record": counts["intervals"] == 0 and counts["runs"] == 0,
                   "a message naming the floor": bool(msg),
                   "integrity ok": chk["integrity_check"] in ("ok", "no file")})
    return res


# -- the whole benchmark -----------------------------------------------------------------------------
def bench_soak(frames: Sequence[int] = (2000, 20000), source: str | None = None, model: str = "default",
               budget_ms: float = 66.0, interval_s: float = 5.0, warmup: float = 0.15,
               tolerance_mb: float = TARGET_MB, faults: bool = True, fault_model: str = "fast",
               tmpfs_size: str = "1m", log=print) -> dict:
    """Soak runs (each a fresh process) and the fault checks; returns the results document."""
    from emoedge.benchmarks.machine import machine_info

    source = source or default_source()
    runs = []
    for n in frames:
        log(f"soak: {n} looped frames of {source}, model {model} ...")
        r = soak_run(n, source, model, budget_ms, interval_s, warmup)
        log(f"  {r.status}: {r.frames} frames, {r.fps:.1f} FPS, peak RSS {r.peak_rss_mb:.1f} MB, RSS "
            f"{r.rss_start_mb:.1f} -> {r.rss_end_mb:.1f} MB, slope {r.slope_b_per_frame:+.1f} B/frame (anonymous "
            f"{r.anon_start_mb:.1f} -> {r.anon_end_mb:.1f} MB, {r.anon_slope_b_per_frame:+.1f} B/frame)"
            + (f" ({r.reason})" if r.reason else ""))
        runs.append(r)
    target = soak_target(runs, tolerance_mb)
    log(target.get("line") or f"target: {target['status']} ({target.get('reason')})")
    fault_res: dict = {}
    if faults:
        with tempfile.TemporaryDirectory(prefix="emoedge-faults-") as tmp:
            for name, fn in (("sigkill", lambda: sigkill_check(Path(tmp) / "kill", model=fault_model)),
                             ("disk_full", lambda: disk_full_check(Path(tmp) / "full", tmpfs_size, model=fault_model)),
                             ("floor", lambda: floor_check(tmp, model=fault_model))):
                log(f"fault check {name} ...")
                try:
                    fault_res[name] = fn()
                except Exception as exc:
                    fault_res[name] = {"status": "fail", "reason": f"{type(exc).__name__}: {exc}"}
                fr = fault_res[name]
                log(f"  {name}: {fr['status']}" + (f" ({fr['reason']})" if fr.get("reason") else "")
                    + (f"; failed: {', '.join(fr['failed_checks'])}" if fr.get("failed_checks") else ""))
    return {"schema_version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(),
            "settings": {"frames": list(frames), "source": source, "model": model, "detector": "haar",
                         "budget_ms": budget_ms, "interval_s": interval_s, "warmup_fraction": warmup,
                         "samples_per_run": SAMPLES_PER_RUN, "tolerance_mb": tolerance_mb, "fault_model": fault_model,
                         "tmpfs_size": tmpfs_size},
            "runs": [r.to_dict() for r in runs], "target": target, "faults": fault_res}


# -- report ---------------------------------------------------------------------------------------------
def plot_rss(results: dict, path: Path) -> None:
    """RSS vs frame per run: the whole run (left) and the measured part, zoomed (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4.4))
    lo, hi = [], []
    for r in results["runs"]:
        if r["status"] != "ok" or not r["samples"]:
            continue
        a = np.asarray(r["samples"], dtype=float)
        label = f"{r['frames']} frames: peak {r['peak_rss_mb']:.1f} MB, slope {r['slope_b_per_frame']:+.1f} B/frame"
        line, = ax0.plot(a[:, 0], a[:, 1] / 2**20, lw=1, label=label)
        c = line.get_color()
        m = a[a[:, 0] >= r["warmup_frames"]]
        ax1.plot(m[:, 0], m[:, 1] / 2**20, lw=1, color=c, label=label)
        ax1.axhline(r["peak_rss_mb"], color=c, ls=":", lw=0.8)
        if len(m) >= 2:
            k, b = np.polyfit(m[:, 0], m[:, 1], 1)
            ax1.plot(m[[0, -1], 0], (k * m[[0, -1], 0] + b) / 2**20, "--", color=c, lw=1)
            lo.append(m[:, 1].min() / 2**20)
            hi.append(max(m[:, 1].max() / 2**20, r["peak_rss_mb"]))
        ax0.axvline(r["warmup_frames"], color=c, ls=":", lw=0.8)
        if a.shape[1] > 2:
            ma = a[a[:, 0] >= r["warmup_frames"]]
            ax2.plot(ma[:, 0], ma[:, 2] / 2**20, lw=1, color=c,
                     label=f"{r['frames']} frames: slope {r.get('anon_slope_b_per_frame', 0.0):+.1f} B/frame")
    ax0.set_xscale("symlog", linthresh=100)
    ax0.set_xlim(left=0)
    ax0.set_xlabel("frame (linear to 100, then log; dotted: end of warm-up)")
    ax0.set_ylabel("RSS (MB)")
    ax0.set_title("whole run (RSS at frame 0: models loaded)", fontsize=9)
    if lo:
        ax1.set_ylim(min(lo) - 1, max(hi) + 1)
    ax1.set_xlabel("frame (dashed: least-squares fit; dotted: peak RSS)")
    ax1.set_title("after the warm-up, zoomed", fontsize=9)
    ax2.set_xlabel("frame")
    ax2.set_ylabel("anonymous RSS (MB)")
    ax2.set_title("anonymous part (heap, stacks) after the warm-up", fontsize=9)
    ax2.legend(fontsize=7, loc="lower right")
    for ax in (ax0, ax1, ax2):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7, loc="lower right")
    s = results["settings"]
    fig.suptitle(f"RSS over a looped run: {Path(s['source']).name}, model {s['model']}, haar, one process per run",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _yes(v) -> str:
    return "yes" if v else "NO"


def _failed(r: dict) -> list[str]:
    return [f"Failed: {'; '.join(r['failed_checks'])}.", ""] if r.get("failed_checks") else []


def markdown(results: dict) -> str:
    s, t, f = results["settings"], results["target"], results.get("faults", {})
    m = results["machine"]
    out = ["# Soak and fault benchmark", "",
           f"{results['created']}, {m.get('cpu')} ({m.get('cores')} cores), git {m.get('git_revision')}.", "",
           f"Command: `{s.get('command', '')}`", "",
           f"Soak: the runtime pipeline on `{s['source']}` looped, model `{s['model']}` (int8), Haar, budget "
           f"{s['budget_ms']:g} ms, JSONL + SQLite sinks (interval {s['interval_s']:g} s), each run in a fresh "
           f"process; RSS from `/proc/self/statm` every N/{s['samples_per_run']} frames; slope = least-squares fit "
           f"after the first {s['warmup_fraction']:.0%} of frames; peak = VmHWM (model loading included).", "",
           "Anonymous RSS (resident minus shared in statm: heap and stacks, what a leak grows) beside it; the "
           "file-backed rest (library code) is mapped in and out by the kernel and varies between runs.", "",
           "| frames | FPS | peak RSS (MB) | peak reached by frame | RSS after init (MB) | RSS start -> end of "
           "measured part (MB) | slope (B/frame) | anonymous RSS start -> end (MB) | anonymous slope (B/frame) | "
           "intervals | records lost |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        if r["status"] != "ok":
            out.append(f"| {r['frames_asked']} | failed: {r['reason']} | | | | | | | | | |")
            continue
        at = r.get("peak_at_frame")
        at = "after the last" if at == -1 else ("?" if at is None else at)
        out.append(f"| {r['frames']} | {r['fps']:.1f} | {r['peak_rss_mb']:.1f} | {at} | {r['rss_after_init_mb']:.1f} | "
                   f"{r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} | {r['slope_b_per_frame']:+.1f} | "
                   f"{r.get('anon_start_mb', 0):.1f} -> {r.get('anon_end_mb', 0):.1f} | "
                   f"{r.get('anon_slope_b_per_frame', 0):+.1f} | "
                   f"{r['intervals_written']} | {r['records_lost']} |")
    out += ["", f"**Target** (same peak RSS within {s['tolerance_mb']:g} MB): " + (t.get("line") or t["status"]), "",
            "![RSS vs frame](soak_rss.png)", "", "## Faults", ""]
    k = f.get("sigkill")
    if k:
        out += [f"**SIGKILL mid-run: {k['status']}.** `{k.get('command', '')}`, frozen (SIGSTOP) once the DB held "
                f">= 3 intervals, committed intervals read, then SIGKILL.", ""]
        if "intervals_after_kill" in k:
            out += ["| intervals before kill | after kill | same set | integrity_check | contiguous, complete rows | "
                    "JSONL half lines | next run (exit, intervals, old kept) |", "|---:|---:|---|---|---|---:|---|",
                    f"| {k['intervals_before_kill']} | {k['intervals_after_kill']} | {_yes(k['same_intervals'])} | "
                    f"{k['integrity_check']} | {_yes(k['contiguous'] and k['complete_rows'])} | "
                    f"{k['jsonl_bad_lines']} | "
                    f"{k['rerun_exit']}, {k['intervals_after_rerun']}, {_yes(k['rerun_kept_old'])} |", ""]
            out += _failed(k)
        elif k.get("reason"):
            out += [f"Reason: {k['reason']}", ""]
    d = f.get("disk_full")
    if d:
        if d["status"] == "skipped":
            out += [f"**Disk full (tmpfs): skipped**: {d['reason']}.", ""]
        else:
            out += [f"**Disk full ({d.get('tmpfs_size')} tmpfs, `--min-free-mb 0`): {d['status']}.** "
                    f"`{d.get('command', '')}`", ""]
            if "exit_code" in d:
                out += ["| exit | records lost | stderr names file | integrity_check | DB intervals / reported "
                        "written / missing | JSONL lines / reported / half lines |", "|---:|---:|---|---|---|---|",
                        f"| {d['exit_code']} | {d['records_lost']} | "
                        f"{_yes(d['stderr_names_db'] or d['stderr_names_events'])} | {d['integrity_check']} | "
                        f"{d['db_intervals']} / {d['db_intervals_reported_written']} / "
                        f"{len(d['db_missing_reported'])} | "
                        f"{d['jsonl_lines']} / {d['jsonl_lines_reported_written']} / {d['jsonl_bad_lines']} |", ""]
                out += _failed(d)
                if d.get("stderr_tail"):
                    out += ["stderr (errors):", "", "```", *d["stderr_tail"], "```", ""]
            elif d.get("reason"):
                out += [f"Reason: {d['reason']}", ""]
    fl = f.get("floor")
    if fl:
        out += [f"**Free-space floor (normal disk, `--min-free-mb {fl.get('min_free_mb')}` > {fl.get('free_mb')} MB "
                f"free): {fl['status']}.** exit {fl.get('exit_code')}, JSONL lines {fl.get('jsonl_lines')}, DB "
                f"intervals {fl.get('db_intervals')}, runs {fl.get('db_runs')}; message: `{fl.get('message')}`", ""]
        out += _failed(fl)
    return "\n".join(out) + "\n"


def write_results(results: dict, out: str | Path) -> Path:
    """soak.json, soak.md and soak_rss.png in ``out``; returns the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(results, indent=1) + "\n")
    plot_rss(results, out / "soak_rss.png")
    md = out / "soak.md"
    md.write_text(markdown(results))
    return md


def all_passed(results: dict) -> bool:
    """The target and every fault check that ran passed (skipped ones do not count)."""
    checks = [results["target"]] + list(results.get("faults", {}).values())
    return all(c.get("status") in ("pass", "skipped") for c in checks)
