"""One resolver of `--model` for every command (issue 28): a file, a shipped name in a format, a shipped
NAME@FORMAT; a shipped name's keras is its float master, in `bench models` as in convert/evaluate/explain."""

import json
from pathlib import Path

import pytest

from emoedge.cli import main
from emoedge.cli._common import model_file
from emoedge.core.errors import ModelError
from emoedge.core.shipped import MODELS_DIR


@pytest.fixture
def masters(tmp_path, monkeypatch):
    """The float masters as a tiny Keras model (rebuilding the real ones takes minutes)."""
    import emoedge.train.masters as masters
    from emoedge.train import zoo

    path = tmp_path / "master.keras"
    zoo.build("small_cnn", 7, width=8).save(path)
    asked = []
    monkeypatch.setattr(masters, "master_path", lambda name, cache=None: asked.append(name) or path)
    return path, asked


def test_every_spelling_resolves_in_one_place(tmp_path, masters):
    path, asked = masters
    int8 = MODELS_DIR / "fast.int8.tflite"
    assert model_file("fast@int8") == model_file("fast") == model_file("fast", "int8") == int8
    assert model_file("fast@uint8") == MODELS_DIR / "fast.uint8.tflite"
    assert model_file("onepass@keras") == model_file("onepass", "keras") == path and asked == ["onepass", "onepass"]
    assert model_file(tmp_path / "x.tflite", missing_ok=True) == tmp_path / "x.tflite"   # a path, even a missing one
    assert model_file("nope@int8", missing_ok=True) == MODELS_DIR / "nope.int8.tflite"
    assert model_file(path, "keras") == path                                              # a file stays a file
    with pytest.raises(ModelError, match="model file not found"):
        model_file(tmp_path / "x.tflite")
    with pytest.raises(ModelError):
        model_file("nope@int8")


def test_bench_models_takes_a_shipped_float_master(tmp_path, masters, capsys):
    rc = main(["bench", "models", "--model", "onepass@keras", "--runs", "3", "--no-rss", "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["models"]
    assert [(Path(r["file"]), r["status"]) for r in rows] == [(masters[0], "ok")]


def test_evaluate_takes_the_spellings_bench_takes(tmp_path, capsys):
    import numpy as np
    from testdata import face_like, write_fer_csv

    imgs, labels = face_like(np.random.default_rng(0), 14, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 14)
    assert main(["evaluate", "--model", "fast@int8", "--data", str(csv), "--usage", "PublicTest"]) == 0
    assert str(MODELS_DIR / "fast.int8.tflite") in capsys.readouterr().out
