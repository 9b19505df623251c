"""Soak and fault benchmark: does the runtime hold its memory over a long looped run, and do its
records survive a SIGKILL, a full disk and the free-space floor?

* Soak: the runtime pipeline (``Pipeline(RuntimeConfig(loop=True, max_frames=N, ...))``) with its
  real sinks (JSON Lines, SQLite) plus :class:`RssSampler`, a sink that reads ``/proc/self/statm``
  every K frames; each N in a fresh process. Reported per run: peak RSS (VmHWM), RSS at the start
  and end of the measured part (after a warm-up), the least-squares slope in bytes/frame over
  the measured part, its late slope (over the second half of the frames), and FPS. Target (issue 14):
  N=20,000 has the same peak RSS as N=2,000 within 2 MB; and (issue 28) the longest run's late slope,
  RSS or anonymous, would not cost more than 5 MB a day at 15 FPS (about 4 B/frame).
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emoedge.benchmarks.childproc import python_env
from emoedge.core.shipped import DEFAULT_MODEL
from emoedge.edge.outputs.sinks import Sink

REPO = Path(__file__).resolve().parents[2]
CLIP = Path("media") / "short_hamilton_clip.mp4"
SAMPLES_PER_RUN = 500          # the same sampler size for every N, so its own memory is equal
TARGET_MB = 2.0
LATE_FRACTION = 0.5            # the late slope: fitted over the second half of a run's frames
SLOPE_LIMIT_MB_PER_DAY = 5.0   # what the late slope may cost ...
SLOPE_FPS = 15.0               # ... at this frame rate, running all day


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
    late_slope_b_per_frame: float = 0.0        # over the second half of the frames (LATE_FRACTION)
    late_anon_slope_b_per_frame: float = 0.0
    samples: list = field(default_factory=list)   # [frame, RSS bytes, anonymous RSS bytes]

    def to_dict(self, samples: bool = True) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples")
        return d


def _soak_child(args: dict) -> dict:
    """In a fresh process: the pipeline for ``max_frames`` looped frames with real sinks + the sampler."""
    from emoedge.edge.outputs.sinks import DiskFloor, JsonlSink, SqliteSink
    from emoedge.edge.runtime.config import RuntimeConfig
    from emoedge.edge.runtime.pipeline import Pipeline

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


def soak_run(frames: int, source: str | None = None, model: str = DEFAULT_MODEL, budget_ms: float = 66.0,
             interval_s: float = 5.0, warmup: float = 0.15, timeout_s: float = 7200) -> SoakRun:
    """One soak run of ``frames`` looped frames in a fresh process."""
    source = source or default_source()
    args = {"frames": int(frames), "source": source, "model": model, "budget_ms": budget_ms,
            "interval_s": interval_s}
    code = ("import json, sys; from emoedge.benchmarks.soak import _soak_child; "
            "print('RESULT ' + json.dumps(_soak_child(json.loads(sys.argv[1]))))")
    try:
        r = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=False,
                           timeout=timeout_s, env=python_env())
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if r.returncode != 0 or not lines:
            err = r.stderr.strip().splitlines()
            raise RuntimeError(err[-1] if err else f"exit {r.returncode}")
        d = json.loads(lines[-1][len("RESULT "):])
        fit = fit_slope(d["samples"], warmup)
        anon = fit_slope(d["samples"], warmup, column=2)
        late = [fit_slope(d["samples"], LATE_FRACTION, column=c)["slope_b_per_frame"] for c in (1, 2)]
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
                   anon_slope_b_per_frame=anon["slope_b_per_frame"], late_slope_b_per_frame=late[0],
                   late_anon_slope_b_per_frame=late[1], samples=d["samples"])


def mb_per_day(slope_b_per_frame: float, fps: float = SLOPE_FPS) -> float:
    """What a slope in bytes/frame costs in a day at ``fps``, in MB."""
    return slope_b_per_frame * fps * 86400 / 2**20


def slope_judgement(run: SoakRun, limit_mb_per_day: float = SLOPE_LIMIT_MB_PER_DAY, fps: float = SLOPE_FPS) -> dict:
    """The late slope judged: the larger of the RSS and anonymous-RSS late slopes, in MB a day at
    ``fps``, must not exceed ``limit_mb_per_day``."""
    worst = max(run.late_slope_b_per_frame, run.late_anon_slope_b_per_frame)
    per_day = mb_per_day(worst, fps)
    return {"slope_ok": per_day <= limit_mb_per_day, "late_slope_b_per_frame": run.late_slope_b_per_frame,
            "late_anon_slope_b_per_frame": run.late_anon_slope_b_per_frame, "late_growth_mb_per_day": per_day,
            "slope_limit_mb_per_day": limit_mb_per_day, "slope_fps": fps,
            "slope_line": (f"late slope (last {1 - LATE_FRACTION:.0%} of {run.frames} frames) {worst:+.1f} B/frame = "
                           f"{per_day:+.1f} MB/day at {fps:g} FPS (limit {limit_mb_per_day:g} MB/day: "
                           f"{'met' if per_day <= limit_mb_per_day else 'NOT met'})")}


def soak_target(runs: Sequence[SoakRun], tolerance_mb: float = TARGET_MB) -> dict:
    """The issue's target: the longest run's peak RSS equals the shortest's within ``tolerance_mb``
    (the process peak, VmHWM), its highest RSS sampled after the warm-up has not grown by more than
    ``tolerance_mb`` (one-sided: over a long run the kernel may drop file-backed pages of the libraries,
    so the resident set can fall tens of MB below a short run's; a fall is not growth; the anonymous
    part, what a leak grows, is reported beside it), and the longest run's late slope costs no more
    than ``SLOPE_LIMIT_MB_PER_DAY`` (:func:`slope_judgement`)."""
    ok = [r for r in runs if r.status == "ok"]
    if len(ok) < 2:
        return {"status": "not run", "reason": "needs two successful runs"}
    short, long_ = min(ok, key=lambda r: r.frames), max(ok, key=lambda r: r.frames)
    d_peak = long_.peak_rss_mb - short.peak_rss_mb
    d_steady = long_.rss_max_measured_mb - short.rss_max_measured_mb
    d_anon = long_.anon_max_measured_mb - short.anon_max_measured_mb
    slope = slope_judgement(long_)
    passed = abs(d_peak) <= tolerance_mb and d_steady <= tolerance_mb and slope["slope_ok"]
    return {**slope, "status": "pass" if passed else "fail", "short_frames": short.frames, "long_frames": long_.frames,
            "peak_rss_diff_mb": d_peak, "steady_rss_max_diff_mb": d_steady, "anon_max_diff_mb": d_anon,
            "tolerance_mb": tolerance_mb, "long_slope_b_per_frame": long_.slope_b_per_frame,
            "long_anon_slope_b_per_frame": long_.anon_slope_b_per_frame,
            "long_growth_projected_mb": long_.slope_b_per_frame * long_.frames / 2**20,
            "line": (f"{'PASS' if passed else 'FAIL'}: peak RSS {long_.frames} frames {long_.peak_rss_mb:.1f} MB vs "
                     f"{short.frames} frames {short.peak_rss_mb:.1f} MB: {d_peak:+.2f} MB (steady-state max "
                     f"{d_steady:+.2f} MB, anonymous {d_anon:+.2f} MB; limit {tolerance_mb:g} MB); slope "
                     f"{long_.slope_b_per_frame:+.1f} B/frame (anonymous {long_.anon_slope_b_per_frame:+.1f}); "
                     + slope["slope_line"])}


# -- the whole benchmark -----------------------------------------------------------------------------
def bench_soak(frames: Sequence[int] = (2000, 20000), source: str | None = None, model: str = DEFAULT_MODEL,
               budget_ms: float = 66.0, interval_s: float = 5.0, warmup: float = 0.15,
               tolerance_mb: float = TARGET_MB, faults: bool = True, fault_model: str = "fast",
               tmpfs_size: str = "1m", log=print) -> dict:
    """Soak runs (each a fresh process) and the fault checks; returns the results document."""
    from emoedge.benchmarks.faults import disk_full_check, floor_check, sigkill_check
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


