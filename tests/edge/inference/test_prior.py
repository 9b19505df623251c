"""emoedge.edge.inference.prior: the deployment class prior (logit adjustment on the device) and the class mix a
training run records for it (emoedge.data.balance); the `uncertain` threshold chosen on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emoedge.core.errors import BadInputError
from emoedge.data.balance import class_weights, training_mix
from emoedge.edge.inference.prior import apply_prior, prior_shift, read_prior_file, trained_mix
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.evaluate.uncertain import choose_uncertain_below
from emoedge.metrics import evaluate_predictions

NAMES = ("calm", "rare")
MANIFEST = {"class_mix": {"trained": {"calm": 0.9, "rare": 0.1}}}


def test_trained_prior_leaves_the_probabilities_as_they_are():
    assert prior_shift("trained", MANIFEST, NAMES) is None
    p = np.array([[0.7, 0.3]], np.float32)
    assert apply_prior(p, None) is p


def test_balanced_prior_moves_a_face_toward_the_rare_class_by_bayes_rule():
    shift = prior_shift("balanced", MANIFEST, NAMES)
    out = apply_prior(np.array([[0.7, 0.3]], np.float32), shift)
    # p(rare) / p(calm) = (0.3 / 0.1) / (0.7 / 0.9) under equal shares
    assert out[0, 1] / out[0, 0] == pytest.approx((0.3 / 0.1) / (0.7 / 0.9), rel=1e-4)
    assert out.sum() == pytest.approx(1.0) and out.argmax() == 1


def test_strength_scales_the_move_and_zero_is_none():
    full, half = prior_shift("balanced", MANIFEST, NAMES), prior_shift("balanced", MANIFEST, NAMES, 0.5)
    assert np.allclose(half, full / 2)
    assert prior_shift("balanced", MANIFEST, NAMES, 0.0) is None


def test_a_prior_file_of_shares_is_read_and_checked(tmp_path):
    good = tmp_path / "room.yaml"
    good.write_text("calm: 3\nrare: 1\n")
    assert np.allclose(read_prior_file(good, NAMES), [0.75, 0.25])
    assert np.allclose(prior_shift(str(good), MANIFEST, NAMES), np.log([0.75 / 0.9, 0.25 / 0.1]), atol=1e-6)
    for text, why in (("calm: 1\n", "missing"), ("calm: 1\nrare: 1\nother: 1\n", "unknown"),
                      ("calm: 1\nrare: 0\n", "> 0"), ("calm: 1\nrare: .nan\n", "> 0"),
                      ("calm: 1\nrare: yes\n", "> 0"), ("[1, 2]\n", "mapping"), ("calm: [\n", "not valid YAML")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(BadInputError, match=why):
            read_prior_file(bad, NAMES)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"calm": 1, "rare": 1, "pad": "x" * 70_000}))
    with pytest.raises(BadInputError, match="at most"):
        read_prior_file(big, NAMES)
    with pytest.raises(BadInputError, match="cannot read"):
        read_prior_file(tmp_path / "absent.yaml", NAMES)


def test_a_model_without_a_recorded_mix_refuses_any_prior_but_trained():
    assert trained_mix({}, NAMES) is None
    assert prior_shift("trained", {}, NAMES) is None
    with pytest.raises(BadInputError, match="class_mix"):
        prior_shift("balanced", {}, NAMES, model="old.tflite")


def test_runtime_config_checks_the_prior_keys():
    assert RuntimeConfig(class_prior="balanced", class_prior_strength=0.5).class_prior == "balanced"
    assert RuntimeConfig(class_prior="/etc/emoedge/room-prior.yaml").class_prior.endswith(".yaml")
    for bad in ({"class_prior": "uniform"}, {"class_prior": ""}, {"class_prior_strength": 1.5},
                {"class_prior_strength": -0.1}):
        with pytest.raises(ConfigError, match="class_prior"):
            RuntimeConfig(**bad)


def test_training_mix_follows_the_weighting():
    labels = np.array([0] * 90 + [1] * 10)
    plain = training_mix(labels, NAMES, "none")
    assert plain["trained"] == pytest.approx({"calm": 0.9, "rare": 0.1})
    assert plain["counts"] == {"calm": 90, "rare": 10}
    sqrt = training_mix(labels, NAMES, "sqrt-weights")
    assert sqrt["trained"]["rare"] == pytest.approx(np.sqrt(0.1) / (np.sqrt(0.1) + np.sqrt(0.9)))
    assert training_mix(labels, NAMES, "weights")["trained"] == pytest.approx({"calm": 0.5, "rare": 0.5})
    assert training_mix(labels, NAMES, "oversample")["counts"] == {"calm": 90, "rare": 50}  # up to the median
    assert class_weights(labels, 2, "none") is None


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    y = np.array([0, 0, 0, 0, 1, 1])
    ev = evaluate_predictions(y, np.array([0, 0, 0, 0, 0, 1]), ("calm", "rare", "absent"))
    assert ev.accuracy == pytest.approx(5 / 6)
    assert ev.balanced_accuracy == pytest.approx((1.0 + 0.5) / 2)
    assert ev.to_dict()["balanced_accuracy"] == pytest.approx(0.75)
    assert "balanced" in ev.table()


def test_uncertain_threshold_sits_where_the_top_class_becomes_more_often_right():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.35, 1.0, 20_000)                # 3 classes: the top class is the one at conf
    labels = np.zeros(len(conf), int)
    right = rng.uniform(size=len(conf)) < conf          # calibrated: right with probability = confidence
    rest = (1 - conf) / 2
    probs = np.stack([np.where(right, conf, rest), np.where(right, rest, conf), rest], axis=1)
    choice = choose_uncertain_below(probs, labels)
    assert 0.45 <= choice.threshold <= 0.55
    assert choice.accuracy_above > 0.6 and choice.accuracy_below < 0.5
    always_right = choose_uncertain_below(probs, probs.argmax(1))
    assert always_right.threshold == 0.0 and always_right.share_uncertain == 0.0


def test_one_noisy_band_does_not_move_the_uncertain_threshold():
    """Isotonic: a dip of a few faces above the crossing pools with its neighbours instead of pushing the
    threshold over it."""
    conf = np.concatenate([np.full(100, 0.4), np.full(100, 0.6), np.full(20, 0.7), np.full(200, 0.9)])
    right = np.concatenate([np.zeros(80, bool), np.ones(20, bool), np.ones(70, bool), np.zeros(30, bool),
                            np.ones(9, bool), np.zeros(11, bool), np.ones(200, bool)])   # the 0.7 band: 45%
    probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)   # the top class is class 0
    choice = choose_uncertain_below(probs, np.where(right, 0, 1))
    assert choice.threshold == 0.6        # not 0.75: the 0.7 band pools with 0.6 and 0.9


def test_the_model_prior_is_what_the_manifest_ships_with():
    m = dict(MANIFEST, class_prior={"prior": "balanced", "strength": 0.5})
    assert np.allclose(prior_shift("model", m, NAMES), prior_shift("balanced", MANIFEST, NAMES, 0.5))
    assert prior_shift("model", MANIFEST, NAMES) is None          # a model that ships none: nothing moves
    with pytest.raises(BadInputError, match="strength"):
        prior_shift("model", dict(MANIFEST, class_prior={"prior": "balanced", "strength": 3}), NAMES)
