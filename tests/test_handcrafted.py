import numpy as np
import pytest

from emoedge.edge.handcrafted import HogLbpClassifier, features, lbp_codes, lbp_histograms


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
    from emoedge.edge.interpreter import ModelError

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
