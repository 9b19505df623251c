"""The benchmark harness on a tiny model and a few real frames: complete, schema-valid JSON and a
Markdown report with plots; a failing format is a row with its reason; reference comparison."""

import json

import numpy as np
import pytest
from testdata import MEDIA, need_shared

from emoedge.benchmarks.classifiers import ClassifierSpec
from emoedge.benchmarks.model_bench import bench_models
from emoedge.benchmarks.report import build_results, compare, validate, write_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tiny_tflite, tmp_path_factory):
    from emoedge.benchmarks.pipeline_bench import bench_pipeline

    need_shared(MEDIA / "short_hamilton_clip.mp4")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (40, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, 40)
    broken = tmp_path_factory.mktemp("b") / "broken.int8.tflite"
    broken.write_bytes(b"not a model")
    specs = [ClassifierSpec(str(tiny_tflite)), ClassifierSpec(str(broken)),
             ClassifierSpec(str(tiny_tflite), name="as-peer", input_size=48, normalization="signed")]
    models = bench_models(specs, faces, labels, threads=(1, 2), runs=20, warmup=3)
    video = str(MEDIA / "short_hamilton_clip.mp4")
    pipes = [bench_pipeline("runtime haar", video, "haar", str(tiny_tflite), "float32", max_frames=15),
             bench_pipeline("runtime missing", video, "blazeface", str(tiny_tflite), "float32", max_frames=5,
                            detector_dir="/nonexistent")]
    return build_results(models, pipes, [{"target": "t", "measured": "1", "met": False, "by": "1"}])


def test_results_are_complete_and_failures_are_rows(results):
    assert validate(results) == []
    ok, broken, peer = results["models"]
    assert ok["status"] == "ok" and ok["agreement"] == 1.0 and ok["accuracy_loss_pts"] == 0.0
    assert [lat["threads"] for lat in ok["latency"]] == [1, 2] and ok["latency"][0]["p50_ms"] > 0
    assert ok["peak_rss_mb"] > 10 and ok["load_ms"] > 0 and ok["size_bytes"] > 0
    assert ok["engine"].startswith("litert cpu + XNNPACK, 1 thread(s)")
    assert len(ok["per_class_recall"]) == 7 and all(0 <= v <= 1 for v in ok["per_class_recall"].values())
    assert broken["status"] == "failed" and "not a loadable TFLite model" in broken["reason"]
    assert peer["status"] == "ok" and peer["name"] == "as-peer"
    # timed again side by side, round-robin: both working models, not the broken one
    for m in (ok, peer):
        assert m["interleaved"]["threads"] == 1 and m["interleaved"]["runs"] == 20 and m["interleaved"]["p50_ms"] > 0
    assert broken.get("interleaved") is None
    run, missing = results["pipelines"]
    assert run["status"] == "ok" and run["frames"] == 15 and run["fps"] > 0 and run["peak_rss_mb"] > 10
    assert missing["status"] == "failed" and "emoedge models fetch blazeface" in missing["reason"]
    for k in ("cpu", "cores", "python", "libraries", "git_revision"):
        assert k in results["machine"]


def test_markdown_report_with_plots(results, tmp_path):
    md = write_report(results, tmp_path)
    text = md.read_text()
    assert "| ok |" in text and "**failed**" in text and "latency_cdf.png" in text
    assert "Side by side" in text and "| as-peer |" in text
    for png in ("latency_cdf.png", "accuracy_vs_latency.png", "stage_breakdown.png", "per_class_accuracy.png"):
        assert (tmp_path / png).stat().st_size > 2000
    assert validate(json.loads((tmp_path / "results.json").read_text())) == []


def test_compare_with_a_reference_that_lacks_rows(results):
    ref = json.loads(json.dumps(results))
    ref["models"] = ref["models"][:1]
    ref["models"][0]["latency"][0]["p50_ms"] /= 10          # the reference was 10x faster
    ref["pipelines"].append({"name": "old run", "status": "ok", "fps": 5.0})
    rows = {(r["kind"], r["name"]): r["status"] for r in compare(results, ref)}
    assert rows[("model", results["models"][0]["name"])].startswith("slower by")
    assert rows[("model", "broken.int8.tflite")] == "new (no reference row)"
    assert rows[("pipeline", "old run")] == "missing in this run"
    assert validate({"models": []}) != []


def test_targets_from_one_results_document():
    from emoedge.benchmarks.targets import evaluate_targets

    lat = lambda ms: [{"threads": 1, "p50_ms": ms, "p95_ms": ms, "p99_ms": ms, "mean_ms": ms}]  # noqa: E731
    res = {"models": [
        {"name": "fer", "format": "float32", "status": "ok", "latency": lat(0.4), "accuracy": 0.655},
        {"name": "fast.int8.tflite", "format": "int8", "status": "ok", "latency": lat(0.3), "accuracy": 0.66,
         "accuracy_loss_pts": 0.1, "agreement": 0.99},
        {"name": "default.int8.tflite", "format": "int8", "status": "ok", "latency": lat(0.5), "accuracy": 0.70,
         "accuracy_loss_pts": 0.5, "agreement": 0.97}],
        "pipelines": [{"name": "runtime haar default", "status": "ok", "fps": 60, "faces_per_frame": 1.0,
                       "peak_rss_mb": 120},
                      {"name": "runtime haar default full-scale detection every frame", "status": "ok", "fps": 40,
                       "faces_per_frame": 0.5, "faces_per_detection": 0.5, "peak_rss_mb": 121},
                      {"name": "naive baseline", "status": "ok", "fps": 10, "faces_per_frame": 1.05,
                       "peak_rss_mb": 800}]}
    rows = {r["target"]: r for r in evaluate_targets(res)}
    assert rows["fast int8 classifies a face in no more time than the fer peer (1 thread, p50)"]["met"]
    assert rows["fast int8 is more accurate than the fer peer"]["met"]
    assert not rows["default.int8.tflite: int8 loses <= 0.3 pts of accuracy against float"]["met"]
    assert rows["default.int8.tflite: int8 loses <= 0.3 pts of accuracy against float"]["by"] == "0.20 pts over"
    assert rows["runtime haar default: >= 5x the naive baseline's FPS"]["met"]
    assert rows["runtime haar default full-scale detection every frame: FPS (information: detecting on every frame "
                "is not the runtime's design)"]["met"]
    faces = [r for r in evaluate_targets(res) if r["target"].startswith("... with the same faces")]
    assert [r["met"] for r in faces] == [True, False] and faces[1]["by"].startswith("52% fewer")
    assert rows["runtime haar default: peak RSS < 150 MB"]["met"]
    # timed one after the other, fast looked faster; timed side by side (interleaved) it is not
    il = lambda ms: {"threads": 1, "runs": 300, "p50_ms": ms, "p95_ms": ms, "p99_ms": ms, "mean_ms": ms}  # noqa: E731
    res["models"][0]["interleaved"], res["models"][1]["interleaved"] = il(0.40), il(0.44)
    row = {r["target"]: r for r in evaluate_targets(res)}[
        "fast int8 classifies a face in no more time than the fer peer (1 thread, p50)"]
    assert not row["met"] and "interleaved" in row["measured"] and row["by"] == "10% slower"


def test_each_model_family_is_compared_with_its_own_float_model(tiny_tflite, tmp_path):
    """fast.int8 is judged against fast's float model, not against the run's main reference."""
    import shutil

    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.train import zoo

    rng = np.random.default_rng(1)
    faces = rng.integers(0, 255, (30, 48, 48), dtype=np.uint8)
    x = faces[..., None].astype(np.float32) / 255.0
    tiny_top = TFLiteClassifier(tiny_tflite).predict(x).argmax(1)
    m = zoo.build("small_cnn", 7, width=4)
    w, b = m.layers[-1].get_weights()
    b[:] = 0
    b[(int(np.bincount(tiny_top).argmax()) + 1) % 7] = 20.0    # another network, another answer
    m.layers[-1].set_weights([w, b])
    other = tmp_path / "other.tflite"
    other.write_bytes(convert_keras(m, "float32"))
    shutil.copy(other, tmp_path / "other.dynamic.tflite")     # the same network under another format name
    labels = rng.integers(0, 7, 30)
    specs = [ClassifierSpec(str(tiny_tflite)), ClassifierSpec(str(other)),
             ClassifierSpec(str(tmp_path / "other.dynamic.tflite"))]
    main, ref, same = bench_models(specs, faces, labels, reference=str(tiny_tflite), runs=5, warmup=1, rss=False)
    assert main.accuracy_loss_pts == 0.0 and main.agreement == 1.0
    # the two networks disagree, so judging `same` against the main reference would show it
    assert (tiny_top != TFLiteClassifier(other).predict(x).argmax(1)).mean() > 0.5
    assert ref.agreement == 1.0 and ref.accuracy_loss_pts == 0.0
    assert same.agreement == 1.0 and same.accuracy_loss_pts == 0.0


def test_frontier_keeps_the_models_nothing_beats_on_both():
    from emoedge.benchmarks.report import frontier

    pts = [(6.0, 70.1, "default"), (0.7, 66.3, "fast"), (0.8, 65.4, "fer"), (0.9, 70.2, "onepass"),
           (0.3, 48.4, "hoglbp")]
    assert [p[2] for p in frontier(pts)] == ["hoglbp", "fast", "onepass"]   # fer and default are beaten
