"""`emoedge bench models|pipeline|all` exit 1 when every row failed, 0 when at least one row is ok,
and name the failed rows (with their reasons) on stderr either way."""

import json

import pytest

from emoedge.cli import main

FAST = ["--runs", "5", "--no-rss"]


def _fake_pipelines(monkeypatch, ok_names=()):
    """Replace the subprocess pipeline benchmark: rows named in ok_names succeed, the others fail."""
    import emoedge.benchmarks.pipeline_bench as bp
    from emoedge.benchmarks.pipeline_bench import PipelineResult

    def fake(name, source, detector="haar", model="default", fmt="int8", *a, **kw):
        if any(n in name for n in ok_names):
            lat = {"frame": {"p50_ms": 100.0, "p95_ms": 100.0, "p99_ms": 100.0, "mean_ms": 100.0}}
            return PipelineResult(name, "ok", "", detector, model, frames=3, fps=10.0, faces_per_frame=1.0,
                                  faces_per_detection=1.0, budget_ms=66.0, budget_hit_rate=1.0, latency=lat,
                                  cpu_s=0.3, wall_s=0.3, peak_rss_mb=100.0)
        return PipelineResult(name, "failed", f"RuntimeError: no such source {source}", detector, model)

    monkeypatch.setattr(bp, "bench_pipeline", fake)


def test_bench_models_every_row_failed_exits_1(tmp_path, capsys):
    rc = main(["bench", "models", "--model", "/nonexistent.tflite", *FAST, "--out", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 of 1 row(s) failed" in err and "nonexistent.tflite: " in err
    res = json.loads((tmp_path / "results.json").read_text())       # the report is still written
    assert [m["status"] for m in res["models"]] == ["failed"]


def test_bench_models_two_failed_rows_name_both(tmp_path, capsys):
    rc = main(["bench", "models", "--model", "/nonexistent.tflite", "--model", "nope@int8", *FAST,
               "--out", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "2 of 2 row(s) failed" in err and "nonexistent.tflite: " in err and "nope.int8.tflite: " in err


def test_bench_models_one_ok_one_failed_exits_0_and_names_the_failed(tmp_path, capsys):
    rc = main(["bench", "models", "--model", "fast@int8", "--model", "/nonexistent.tflite", *FAST,
               "--out", str(tmp_path)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "1 of 2 row(s) failed" in err and "nonexistent.tflite: " in err and "fast.int8.tflite" not in err
    res = json.loads((tmp_path / "results.json").read_text())
    assert [m["status"] for m in res["models"]] == ["ok", "failed"]


def test_bench_pipeline_missing_source_exits_1(tmp_path, capsys):
    rc = main(["bench", "pipeline", "--source", str(tmp_path / "missing.mp4"), "--max-frames", "2",
               "--out", str(tmp_path / "b")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "emoedge bench pipeline: 1 of 1 row(s) failed" in err and "runtime haar ferplus7@int8: " in err


@pytest.mark.parametrize("ok, expected", [((), 1), (("haar",), 0)])
def test_bench_pipeline_exit_code_follows_the_rows(tmp_path, capsys, monkeypatch, ok, expected):
    _fake_pipelines(monkeypatch, ok)
    rc = main(["bench", "pipeline", "--source", "clip.mp4", "--detector", "haar,blazeface", "--out", str(tmp_path)])
    assert rc == expected
    err = capsys.readouterr().err
    assert f"{2 - len(ok)} of 2 row(s) failed" in err and "runtime blazeface ferplus7@int8: RuntimeError" in err


def test_bench_all_every_row_failed_exits_1(tmp_path, capsys, monkeypatch):
    _fake_pipelines(monkeypatch)
    rc = main(["bench", "all", "--model", "/nonexistent.tflite", "--source", "clip.mp4", *FAST,
               "--out", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "bench models: 1 of 1" in err and "bench pipeline: 1 of 1" in err and "every row failed" in err


def test_bench_all_models_only_every_row_failed_exits_1(tmp_path, capsys):
    rc = main(["bench", "all", "--model", "/nonexistent.tflite", *FAST, "--out", str(tmp_path)])
    assert rc == 1
    assert "every row failed" in capsys.readouterr().err


def test_bench_all_with_an_ok_pipeline_exits_0(tmp_path, capsys, monkeypatch):
    _fake_pipelines(monkeypatch, ok_names=("haar",))
    rc = main(["bench", "all", "--model", "/nonexistent.tflite", "--source", "clip.mp4", *FAST,
               "--out", str(tmp_path)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "bench models: 1 of 1" in err and "every row failed" not in err
