"""The soak benchmark's report: RSS plots, the Markdown table, the results files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emoedge.benchmarks.machine import dirty_warning
from emoedge.benchmarks.soak import SLOPE_FPS, SLOPE_LIMIT_MB_PER_DAY
from emoedge.tables import markdown_table


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
           *([f"**{dirty_warning(m.get('git_revision'))}**", ""] if dirty_warning(m.get("git_revision")) else []),
           f"Command: `{s.get('command', '')}`", "",
           f"Soak: the runtime pipeline on `{s['source']}` looped, model `{s['model']}` (int8), Haar, budget "
           f"{s['budget_ms']:g} ms, JSONL + SQLite sinks (interval {s['interval_s']:g} s), each run in a fresh "
           f"process; RSS from `/proc/self/statm` every N/{s['samples_per_run']} frames; slope = least-squares fit "
           f"after the first {s['warmup_fraction']:.0%} of frames; peak = VmHWM (model loading included).", "",
           "Anonymous RSS (resident minus shared in statm: heap and stacks, what a leak grows) beside it; the "
           "file-backed rest (library code) is mapped in and out by the kernel and varies between runs.", ""]
    rows = []
    for r in results["runs"]:
        if r["status"] != "ok":
            rows.append([r["frames_asked"], f"failed: {r['reason']}"])
            continue
        at = r.get("peak_at_frame")
        at = "after the last" if at == -1 else ("?" if at is None else at)
        rows.append([r["frames"], f"{r['fps']:.1f}", f"{r['peak_rss_mb']:.1f}", at, f"{r['rss_after_init_mb']:.1f}",
                     f"{r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f}", f"{r['slope_b_per_frame']:+.1f}",
                     f"{r.get('anon_start_mb', 0):.1f} -> {r.get('anon_end_mb', 0):.1f}",
                     f"{r.get('anon_slope_b_per_frame', 0):+.1f}", r["intervals_written"], r["records_lost"]])
    out.append(markdown_table(["frames", "FPS", "peak RSS (MB)", "peak reached by frame", "RSS after init (MB)",
                               "RSS start -> end of measured part (MB)", "slope (B/frame)",
                               "anonymous RSS start -> end (MB)", "anonymous slope (B/frame)", "intervals",
                               "records lost"], rows, "r" * 11))
    out += ["", f"**Target** (same peak RSS within {s['tolerance_mb']:g} MB; the longest run's late slope costs "
            f"at most {t.get('slope_limit_mb_per_day', SLOPE_LIMIT_MB_PER_DAY):g} MB a day at "
            f"{t.get('slope_fps', SLOPE_FPS):g} FPS): " + (t.get("line") or t["status"]), "",
            "![RSS vs frame](soak_rss.png)", "", "## Faults", ""]
    k = f.get("sigkill")
    if k:
        out += [f"**SIGKILL mid-run: {k['status']}.** `{k.get('command', '')}`, frozen (SIGSTOP) once the DB held "
                f">= 3 intervals, committed intervals read, then SIGKILL.", ""]
        if "intervals_after_kill" in k:
            out += [markdown_table(
                ["intervals before kill", "after kill", "same set", "integrity_check", "contiguous, complete rows",
                 "JSONL half lines", "next run (exit, intervals, old kept)"],
                [[k["intervals_before_kill"], k["intervals_after_kill"], _yes(k["same_intervals"]),
                  k["integrity_check"], _yes(k["contiguous"] and k["complete_rows"]), k["jsonl_bad_lines"],
                  f"{k['rerun_exit']}, {k['intervals_after_rerun']}, {_yes(k['rerun_kept_old'])}"]], "rrlllrl"), ""]
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
                out += [markdown_table(
                    ["exit", "records lost", "stderr names file", "integrity_check",
                     "DB intervals / reported written / missing", "JSONL lines / reported / half lines"],
                    [[d["exit_code"], d["records_lost"], _yes(d["stderr_names_db"] or d["stderr_names_events"]),
                      d["integrity_check"],
                      f"{d['db_intervals']} / {d['db_intervals_reported_written']} / {len(d['db_missing_reported'])}",
                      f"{d['jsonl_lines']} / {d['jsonl_lines_reported_written']} / {d['jsonl_bad_lines']}"]],
                    "rrllll"), ""]
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
