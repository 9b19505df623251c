"""The hand-crafted HOG+LBP engine (emoedge.edge.engines.handcrafted): LBP codes, features, a baseline above chance."""

import numpy as np
import pytest

from emoedge.edge.engines.handcrafted import HogLbpClassifier, features, lbp_codes, lbp_histograms


def test_lbp_codes_by_hand():
    g = np.array([[5, 5, 5], [1, 4, 9], [0, 0, 0]], np.uint8)
    # neighbours clockwise from top-left: 5 5 5 9 0 0 0 1 -> >= 4: 1 1 1 1 0 0 0 0
    assert lbp_codes(g)[0, 0] == 0b00001111
    h = lbp_histograms(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8))
    assert h.shape == (16 * 59,) and np.allclose(h.reshape(16, 59).sum(1), 1)


def test_features_shape_and_bad_file(tmp_path):
    f = features(np.zeros((3, 48, 48), np.uint8))
    assert f.shape == (3, 1844) and f.dtype == np.float32
    bad = tmp_path / "x.hoglbp.npz"
    bad.write_bytes(b"nope")
    from emoedge.core.errors import ModelError

    with pytest.raises(ModelError, match="not a HOG\\+LBP model file"):
        HogLbpClassifier(bad)


@pytest.mark.shared
def test_hoglbp_baseline_beats_chance_on_real_fer2013(fer2013, tmp_path):
    from emoedge.evaluate import evaluate_model
    from emoedge.train.handcrafted import train_hoglbp

    rec = train_hoglbp(fer2013, tmp_path, max_train_items=3000)
    # chance is 1/7 = 14%; always answering the majority class (happy) gives 25%
    assert rec["test"]["accuracy"] > 0.33, rec["test"]["accuracy"]
    run = evaluate_model(tmp_path / "model.hoglbp.npz", fer2013, usage="PublicTest")
    assert run.evaluation.accuracy == pytest.approx(rec["test"]["accuracy"])


def test_ship_the_handcrafted_baseline_runs_without_an_interpreter(tmp_path, rng):
    """A HOG+LBP run ships as name.hoglbp.npz + manifest + evaluation + calibration + generated card,
    and the device classifier reads it through the same factory as the CNNs."""
    import json

    from testdata import face_like, write_fer_csv

    from emoedge.convert.ship import ship
    from emoedge.data.datasets import load_fer2013_csv
    from emoedge.edge.inference.classify import FaceClassifier
    from emoedge.train.handcrafted import train_hoglbp

    imgs, labels = face_like(rng, 280, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 210 + ["PublicTest"] * 70)
    ds = load_fer2013_csv(csv)
    train_hoglbp(ds, tmp_path / "run")
    models = tmp_path / "models"
    out = ship(tmp_path / "run", "hoglbp", ds, command="emoedge train --config hoglbp ...", out_dir=models,
               report_dir=tmp_path / "rep")
    assert sorted(p.name for p in models.iterdir()) == ["hoglbp.eval.json", "hoglbp.hoglbp.npz",
                                                        "hoglbp.hoglbp.npz.json", "hoglbp.md", "hoglbp.run.json"]
    manifest = json.loads((models / "hoglbp.hoglbp.npz.json").read_text())
    assert manifest["format"] == "hoglbp" and manifest["temperature"] > 0
    assert set(manifest["reference_distribution"]) == set(ds.class_names)
    card = out["card"].read_text()
    ev = json.loads((models / "hoglbp.eval.json").read_text())
    assert f"{ev['accuracy']:.2%}" in card and "linear classifier" in card and "scikit-learn" in card
    clf = FaceClassifier(out["hoglbp"])
    assert clf.class_names == ds.class_names and clf.temperature == manifest["temperature"]
    assert clf.predict(imgs[:3, :, :, None] / 255.0).shape == (3, 7)
