"""The drift measure (emoedge.core.divergence.js_divergence) the fleet page and the device monitor share."""

from __future__ import annotations

import pytest

from emoedge.core.divergence import js_divergence


def test_js_divergence():
    assert js_divergence({"a": 1.0}, {"a": 1.0}) == 0.0
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert 0 < js_divergence({"a": 0.7, "b": 0.3}, {"a": 0.3, "b": 0.7}) < 1


def test_js_divergence_bounds():
    assert js_divergence([1, 0], [1, 0]) == pytest.approx(0, abs=1e-9)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1, abs=1e-6)
