import numpy as np
import pytest

from emoedge.metrics import confusion_matrix, evaluate_predictions


def test_metrics_by_hand():
    y = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    ev = evaluate_predictions(y, np.asarray(pred), ["a", "b", "c"])
    assert ev.n == 6 and ev.accuracy == pytest.approx(4 / 6)
    a, b, c = ev.per_class
    assert (a.precision, a.recall) == (0.5, 0.5)
    assert b.precision == pytest.approx(2 / 3) and b.recall == 1.0
    assert c.precision == 1.0 and c.recall == 0.5
    assert ev.macro_f1 == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    assert ev.confusion_matrix == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    d = ev.to_dict()
    assert {"n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names"} <= set(d)
    assert "accuracy" in ev.table()


def test_probabilities_and_class_count_mismatch():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert evaluate_predictions([0, 1], probs, ["x", "y"]).accuracy == 1.0
    with pytest.raises(ValueError, match="2 outputs but there are 3 classes"):
        evaluate_predictions([0, 1], probs, ["x", "y", "z"])
    with pytest.raises(ValueError, match="empty"):
        evaluate_predictions([], np.zeros((0,)), ["x"])


def test_confusion_counts_sum_to_n():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 5, 100), rng.integers(0, 5, 100)
    cm = confusion_matrix(y, p, 5)
    assert cm.sum() == 100 and np.trace(cm) == (y == p).sum()
