"""The command line mirrors the Python API and turns bad input into one clear line."""

import json

import numpy as np
import pytest
from conftest import face_like, write_fer_csv

from emoedge.cli import main


@pytest.fixture
def csv_path(tmp_path, rng):
    imgs, labels = face_like(rng, 42, 7)
    return write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 28 + ["PublicTest"] * 14)


def test_data_inspect(csv_path, tmp_path, capsys):
    assert main(["data", "inspect", str(csv_path), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "42 images, 7 classes" in out and "PublicTest" in out
    assert json.loads((tmp_path / "o" / "inspect.json").read_text())["n"] == 42


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    assert main(["data", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emoedge: error:") and "bad.csv: row 1: 3 pixels, expected 2304" in err
    assert main(["evaluate", "--model", str(tmp_path / "none.tflite"), "--data", str(bad)]) == 2
    assert "none.tflite: model file not found" in capsys.readouterr().err


def test_train_config_errors(csv_path, tmp_path, capsys):
    assert main(["train", "--data", str(csv_path), "--config", "nope", "--out", str(tmp_path)]) == 2
    assert "nope: training config not found" in capsys.readouterr().err
    assert main(["train", "--data", str(csv_path), "--set", "epochz=1", "--out", str(tmp_path)]) == 2
    assert "unknown training option(s) ['epochz']" in capsys.readouterr().err


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "fast" in out


def test_run_and_doctor_and_export(tiny_tflite, tmp_path, capsys):
    from emoedge.edge.sinks import read_intervals

    db = tmp_path / "s.sqlite"
    assert main(["run", "--source", "demo", "--model", str(tiny_tflite), "--max-frames", "4", "--db", str(db),
                 "--summary-json", str(tmp_path / "sum.json")]) == 0
    out = capsys.readouterr().out
    assert "4 frames" in out and "stopped by max_frames" in out
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert summary["frames"] == 4 and summary["faces_seen"] == 1 and summary["detection_frames"] >= 1
    assert read_intervals(db)[0]["frames"] == 4
    assert main(["export", "--db", str(db), "--csv", str(tmp_path / "s.csv")]) == 0
    assert main(["doctor", "--profile", "x86-dev", "--model", str(tiny_tflite)]) == 0
    assert "edge tpu" in capsys.readouterr().out
    assert main(["run", "--source", str(tmp_path / "missing.mp4"), "--model", str(tiny_tflite)]) == 2
    assert "missing.mp4: video file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_convert_and_bench_from_the_command_line(tiny_tflite, csv_path, tmp_path, capsys):
    keras_path = tiny_tflite.with_name("tiny.keras")
    out = tmp_path / "conv"
    assert main(["convert", "--model", str(keras_path), "--to", "int8,onnx", "--calib", str(csv_path),
                 "--calib-size", "20", "--class-names", "angry,disgust,fear,happy,sad,surprise,neutral",
                 "--out", str(out), "--report", "--data", str(csv_path), "--usage", "PublicTest"]) == 0
    assert (out / "tiny.int8.tflite").is_file() and (out / "quantization_report.md").is_file()
    capsys.readouterr()
    assert main(["bench", "models", "--model", str(out / "tiny.int8.tflite"), "--model", str(tmp_path / "nope.tflite"),
                 "--runs", "5", "--no-rss", "--out", str(tmp_path / "b")]) == 0
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [m["status"] for m in res["models"]] == ["ok", "failed"]
