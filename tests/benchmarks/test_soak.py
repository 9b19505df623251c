"""The soak and fault benchmark harness (``emoedge.benchmarks.soak``) on small runs: the RSS slope
fit, a short looped soak run, SIGKILL mid-run, a full disk (a tmpfs, needs root) and the floor."""

import math

import numpy as np
import pytest

from emoedge.benchmarks import faults, soak, soak_report
from emoedge.core.shipped import DEFAULT_MODEL


def test_fit_slope_leaves_out_the_warmup_and_recovers_a_known_slope():
    frames = np.arange(0, 1001, 10)
    rss = 100 * 2**20 + 37.0 * frames
    rss[frames < 100] -= 5 * 2**20                    # loading: a jump inside the warm-up
    fit = soak.fit_slope(list(zip(frames.tolist(), rss.tolist())), warmup=0.15)
    assert fit["warmup_frames"] == 150
    assert fit["slope_b_per_frame"] == pytest.approx(37.0, rel=1e-6)
    assert fit["rss_end_mb"] - fit["rss_start_mb"] == pytest.approx(37.0 * 850 / 2**20)


def _run(frames, peak, steady, slope=0.0, late=0.0, late_anon=0.0):
    return soak.SoakRun(frames, "ok", frames=frames, peak_rss_mb=peak, rss_max_measured_mb=steady,
                        slope_b_per_frame=slope, late_slope_b_per_frame=late, late_anon_slope_b_per_frame=late_anon)


def test_soak_target_compares_the_longest_run_with_the_shortest():
    t = soak.soak_target([_run(2000, 150.0, 149.0), _run(20000, 151.5, 150.9)], 2.0)
    assert t["status"] == "pass" and t["peak_rss_diff_mb"] == pytest.approx(1.5)
    t = soak.soak_target([_run(20000, 150.5, 153.5, 200.0), _run(2000, 150.0, 149.0)], 2.0)
    assert t["status"] == "fail" and t["line"].startswith("FAIL")       # steady state grew 4.5 MB
    assert soak.soak_target([_run(2000, 150.0, 149.0)])["status"] == "not run"


def test_a_resident_set_that_falls_over_a_long_run_is_not_growth():
    """The 200,000-frame run of 2026-12-05: peak +0.38 MB, but the RSS sampled late fell 34 MB below the short
    run's (the kernel dropped file-backed library pages; anonymous +0.84 MB): a fall passes, growth does not."""
    t = soak.soak_target([_run(2000, 92.5, 92.5), _run(200000, 92.9, 58.5)], 2.0)
    assert t["status"] == "pass" and t["steady_rss_max_diff_mb"] == pytest.approx(-34.0)
    assert soak.soak_target([_run(2000, 92.5, 92.5), _run(200000, 92.9, 94.6)], 2.0)["status"] == "fail"


def test_a_late_slope_above_5_mb_a_day_at_15_fps_fails_the_target():
    assert soak.mb_per_day(4.0) == pytest.approx(4.0 * 15 * 86400 / 2**20)        # 4.94 MB a day
    short = _run(2000, 150.0, 149.0)
    t = soak.soak_target([short, _run(200_000, 150.5, 149.5, late=4.0)], 2.0)
    assert t["status"] == "pass" and t["slope_ok"] and "met" in t["slope_line"]
    t = soak.soak_target([short, _run(200_000, 150.5, 149.5, late=4.2)], 2.0)    # same peak, 5.19 MB a day
    assert t["status"] == "fail" and not t["slope_ok"] and t["late_growth_mb_per_day"] == pytest.approx(5.19, abs=0.01)
    assert "NOT met" in t["line"]
    t = soak.soak_target([short, _run(200_000, 150.5, 149.5, late=1.0, late_anon=9.0)], 2.0)  # the heap grows
    assert t["status"] == "fail"


def test_the_late_slope_is_fitted_over_the_second_half():
    frames = np.arange(0, 20001, 40)
    rss = 100 * 2**20 + np.where(frames < 10000, 200.0 * frames, 200.0 * 10000 + 2.0 * (frames - 10000))
    samples = [[f, r, r - 50 * 2**20] for f, r in zip(frames.tolist(), rss.tolist())]
    fit = soak.fit_slope(samples, soak.LATE_FRACTION)
    assert fit["warmup_frames"] == 10000 and fit["slope_b_per_frame"] == pytest.approx(2.0)


def test_a_short_looped_soak_run_reports_peak_rss_and_a_slope():
    r = soak.soak_run(300, source="demo", model="fast", interval_s=1.0)
    assert r.status == "ok", r.reason
    assert r.frames == 300 and r.exit_code == 0 and r.records_lost == 0
    assert len(r.samples) == 301 and r.sample_every == 1               # the start + every frame
    assert math.isfinite(r.slope_b_per_frame) and math.isfinite(r.late_slope_b_per_frame)
    assert math.isfinite(r.late_anon_slope_b_per_frame)
    assert r.peak_rss_mb >= r.rss_max_measured_mb > 20 and r.fps > 0
    assert 0 < r.anon_max_measured_mb < r.rss_max_measured_mb and math.isfinite(r.anon_slope_b_per_frame)


def test_sigkill_mid_run_keeps_exactly_the_committed_intervals(tmp_path):
    r = faults.sigkill_check(tmp_path, model="fast")
    assert r["status"] == "pass", r
    assert r["intervals_before_kill"] >= 3 and r["returncode"] == -9


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory):
    r = faults.disk_full_check(tmp_path_factory.mktemp("full"), "1m", model="fast", max_frames=600)
    if r["status"] == "skipped":
        pytest.skip(f"disk-full check on a tmpfs: {r['reason']}")
    return r


@pytest.mark.slow
def test_a_full_disk_loses_records_but_nothing_written_is_torn(disk_full):
    r = disk_full
    c = r["checks"]
    assert c["the disk filled"] and c["exit code 4"] and c["stderr names the file"], r
    assert r["records_lost"] > 0 and r["unmounted"]
    assert r["integrity_check"] == "ok"
    assert c["DB holds every interval reported written"] and c["DB holds nothing unreported"], r
    assert 0 < r["intervals_stored_by_all"] <= r["db_intervals"] and r["records_lost"] > 0
    assert c["JSONL intervals = those reported written"], r


@pytest.mark.slow
def test_a_full_disk_leaves_no_half_jsonl_line(disk_full):
    assert disk_full["jsonl_bad_lines"] == 0 and disk_full["jsonl_ends_with_newline"]


def test_below_the_free_space_floor_nothing_is_written(tmp_path):
    r = faults.floor_check(tmp_path, model="fast", max_frames=20)
    assert r["status"] == "pass", r
    assert r["exit_code"] == 4 and r["jsonl_lines"] == 0 and r["db_intervals"] == 0
    assert "below the floor" in r["message"]


def test_bench_soak_command_and_report(tmp_path):
    from emoedge.cli import build_parser, cmd_bench_soak

    a = build_parser().parse_args(["bench", "soak", "--frames", "10,20", "--no-faults"])
    assert a.func is cmd_bench_soak and a.out == "docs/benchmarks/x86-dev" and a.model == DEFAULT_MODEL == "ferplus7"
    samples = [[i, (100 + i / 1000) * 2**20, (40 + i / 1000) * 2**20] for i in range(0, 2001, 40)]
    run = {**_run(2000, 101.0, 102.0, 1048.6).to_dict(), "samples": samples, "warmup_frames": 320, "fps": 30.0}
    res = {"created": "now", "machine": {"cpu": "x", "cores": 2, "git_revision": "abc"},
           "settings": {"frames": [2000], "source": "demo", "model": "fast", "budget_ms": 66.0, "interval_s": 5.0,
                        "warmup_fraction": 0.15, "samples_per_run": 500, "tolerance_mb": 2.0, "command": "c"},
           "runs": [run], "target": {"status": "not run"},
           "faults": {"disk_full": {"status": "skipped", "reason": "not root"}}}
    md = soak_report.write_results(res, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"soak.json", "soak.md", "soak_rss.png"}
    text = md.read_text()
    assert "| 2000 | 30.0 | 101.0 | 0 |" in text and "skipped**: not root" in text
    assert "late slope costs at most 5 MB a day at 15 FPS" in text
    assert soak.fit_slope(samples, 0.15, column=2)["slope_b_per_frame"] == pytest.approx(2**20 / 1000)
    assert soak_report.all_passed({**res, "target": {"status": "pass"}})
