"""Temperature scaling (emoedge.evaluate.temperature, emoedge.core.temperature): lower ECE and NLL; shipped models."""

import json
from pathlib import Path

import numpy as np
import pytest

from emoedge.core.temperature import apply_temperature
from emoedge.evaluate.temperature import fit_temperature, nll, reliability


def _overconfident(rng, n=4000, k=5, acc=0.6):
    labels = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < acc, labels, rng.integers(0, k, n))
    probs = np.full((n, k), 0.01 / (k - 1))
    probs[np.arange(n), pred] = 0.99                    # always 99% sure, right ~60% of the time
    return probs / probs.sum(1, keepdims=True), labels


def test_temperature_lowers_ece_and_nll_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    probs, labels = _overconfident(rng)
    t = fit_temperature(probs, labels)
    assert t > 1.5                                      # it softens
    cal = apply_temperature(probs, t)
    assert reliability(cal, labels).ece < 0.5 * reliability(probs, labels).ece
    assert nll(cal, labels) < nll(probs, labels)
    np.testing.assert_array_equal(cal.argmax(1), probs.argmax(1))     # never changes the top class
    np.testing.assert_allclose(cal.sum(1), 1, atol=1e-5)


def test_identity_and_reliability_bins():
    p = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert apply_temperature(p, 1.0) is p
    r = reliability(p, np.array([0, 0]), n_bins=10)
    assert sum(r.counts) == 2 and r.ece == pytest.approx((abs(0.7 - 1) + abs(0.8 - 0)) / 2)


def test_no_shipped_manifest_applies_a_temperature_that_worsens_calibration():
    from emoedge.core.shipped import MODELS_DIR

    for mp in sorted(Path(MODELS_DIR).glob("*.json")):
        m = json.loads(mp.read_text())
        cal = m.get("calibration_of_probabilities") if isinstance(m, dict) else None
        if cal:
            assert cal["ece_after"] <= cal["ece_before"] + 1e-12, f"{mp.name}: T={m['temperature']} worsens ECE"
