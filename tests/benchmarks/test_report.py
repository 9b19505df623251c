"""Benchmark records that are true (issue 28): a result written from a dirty tree says so loudly, and
rows a run did not measure, kept from the previous results file, are marked as carried over with their
own run's time and revision."""

import json

from emoedge.benchmarks.machine import dirty_warning
from emoedge.benchmarks.report import carry_over, render_markdown
from emoedge.benchmarks.soak_report import markdown
from emoedge.cli import main

MACHINE = {"cpu": "x", "cores": 2, "machine": "x86_64", "python": "3", "libraries": {}}
PIPE = {"name": "runtime haar default@int8", "status": "failed", "reason": "no source"}


def _results(rev, pipelines=()):
    return {"created": "now", "machine": {**MACHINE, "git_revision": rev}, "models": [], "pipelines": list(pipelines),
            "targets": []}


def test_a_result_from_a_dirty_tree_says_so_loudly():
    assert dirty_warning("abc1234") is None and dirty_warning(None) is None
    assert "uncommitted changes (git abc1234-dirty)" in dirty_warning("abc1234-dirty")
    assert "**WARNING: written from a working tree" in render_markdown(_results("abc1234-dirty"), {})
    assert "WARNING" not in render_markdown(_results("abc1234"), {})
    soak = {"created": "now", "machine": {**MACHINE, "git_revision": "abc1234-dirty"}, "runs": [],
            "target": {"status": "not run"}, "faults": {},
            "settings": {"source": "demo", "model": "fast", "budget_ms": 66.0, "interval_s": 5.0,
                         "samples_per_run": 500, "warmup_fraction": 0.15, "tolerance_mb": 2.0}}
    assert "**WARNING: written from a working tree" in markdown(soak)


def test_carried_rows_keep_their_own_run():
    prev = {**_results("old1234"), "created": "2026-01-01T00:00:00Z"}
    rows = carry_over([PIPE, {**PIPE, "carried_over": {"created": "older", "git_revision": "0ld"}}], prev)
    assert rows[0]["carried_over"] == {"created": "2026-01-01T00:00:00Z", "git_revision": "old1234"}
    assert rows[1]["carried_over"] == {"created": "older", "git_revision": "0ld"}
    md = render_markdown(_results("new5678", rows), {})
    assert "runtime haar default@int8 *(carried over from 2026-01-01T00:00:00Z, git old1234)*" in md


def test_bench_models_marks_the_pipelines_it_did_not_run(tmp_path, capsys):
    prev = {**_results("old1234", [PIPE]), "created": "2026-01-01T00:00:00Z", "schema_version": 1}
    (tmp_path / "results.json").write_text(json.dumps(prev))
    assert main(["bench", "models", "--model", "fast@int8", "--runs", "3", "--no-rss", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["models"][0].get("carried_over") is None
    assert res["pipelines"][0]["carried_over"] == {"created": "2026-01-01T00:00:00Z", "git_revision": "old1234"}
    assert "carried over from 2026-01-01T00:00:00Z, git old1234" in (tmp_path / "report.md").read_text()
