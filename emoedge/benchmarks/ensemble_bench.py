"""Ensembles evaluated against their members: mean, vote and stacking over models of any format
(Keras, TFLite, ONNX, HOG+LBP), on the same split, with each one's latency per face beside its
accuracy. Stacking is fitted on the validation split carved from training (never the test split).
Writes a device ensemble spec per method (``edge/inference/ensemble.py`` runs it) and a report.

:func:`compare_members` does the same for a Keras fusion (``emoedge.train.fusion``): each member's
and the fused model's accuracy and float TFLite latency."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.benchmarks.timing import percentiles, time_calls
from emoedge.core.preprocess import normalize
from emoedge.data.datasets import FaceDataset
from emoedge.edge.inference.ensemble import METHODS, combine, write_spec
from emoedge.evaluate import evaluate_model, load_classifier, model_class_names, select_split
from emoedge.metrics import evaluate_predictions
from emoedge.tables import markdown_table


def fit_stack(member_probs: Sequence[np.ndarray], labels: np.ndarray, k: int, c: float = 1.0) -> dict:
    """A multinomial logistic regression over the members' concatenated probabilities."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate(member_probs, axis=1)
    clf = LogisticRegression(C=c, max_iter=1000).fit(x, labels)
    coef = np.zeros((k, x.shape[1]), np.float32)
    icpt = np.full(k, -1e9, np.float32)   # a class absent from the fitting data never wins
    coef[clf.classes_] = clf.coef_
    icpt[clf.classes_] = clf.intercept_
    return {"coef": coef, "intercept": icpt}


def latency_ms_per_face(clf, runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of one single-face ``predict`` (the runtime classifies faces one by one)."""
    x = np.random.default_rng(0).random((1, 48, 48, 1), dtype=np.float32)
    return percentiles(time_calls(lambda: clf.predict(x), runs, warmup), [50])[0]


def evaluate_ensembles(members: Sequence[str | Path], dataset: FaceDataset, usage: str = "PublicTest",
                       methods: Sequence[str] = METHODS, out_dir: str | Path | None = None, name: str = "ensemble",
                       num_threads: int = 1, latency_runs: int = 200) -> dict:
    """Score every member and every method on ``usage``; fit stacking on the validation split.

    Returns (and with ``out_dir`` writes as ``ensembles.json`` + ``ensembles.md`` + one
    ``NAME-METHOD.ensemble.json`` per method) the rows: model, role, accuracy, macro-F1,
    latency per face (ms, ``num_threads`` threads), and the gain over the best member."""
    members = [Path(m) for m in members]
    if len(members) < 2:
        raise ValueError("an ensemble comparison needs at least two members")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown ensemble method(s) {bad}; choose from {list(METHODS)}")
    names = [model_class_names(m) for m in members]
    class_names = tuple(dataset.class_names)
    for m, n in zip(members, names):
        if n is not None and tuple(n) != class_names:
            raise ValueError(f"{m}: its classes {list(n)} differ from the data's {list(class_names)}")
    test = select_split(dataset, usage)
    if len(test) == 0:
        raise ValueError(f"{dataset.source}: the {usage!r} split is empty")
    x_test = normalize(test.images)
    need_val = "stack" in methods
    val = select_split(dataset, "val") if need_val else None
    x_val = normalize(val.images) if need_val else None
    k = len(class_names)

    rows, test_probs, val_probs, lat = [], [], [], []
    for m in members:
        clf = load_classifier(m, num_threads=num_threads)
        p = np.asarray(clf.predict(x_test), np.float32)
        test_probs.append(p)
        if need_val:
            val_probs.append(np.asarray(clf.predict(x_val), np.float32))
        lat.append(latency_ms_per_face(clf, latency_runs))
        ev = evaluate_predictions(test.labels, p, class_names)
        rows.append({"model": m.name, "role": "member", "accuracy": ev.accuracy, "macro_f1": ev.macro_f1,
                     "latency_ms_per_face": lat[-1]})
    best = max(r["accuracy"] for r in rows)
    specs = {}
    for method in methods:
        stack = fit_stack(val_probs, val.labels, k) if method == "stack" else None
        p = combine(method, test_probs, stack)
        ev = evaluate_predictions(test.labels, p, class_names)
        rows.append({"model": f"{name}-{method}", "role": f"ensemble ({method})", "accuracy": ev.accuracy,
                     "macro_f1": ev.macro_f1, "latency_ms_per_face": float(sum(lat)),
                     "gain_over_best_member_pts": 100 * (ev.accuracy - best)})
        if out_dir is not None:
            specs[method] = write_spec(Path(out_dir) / f"{name}-{method}.ensemble.json", members, method,
                                       class_names, stack)
    result = {"data": Path(dataset.source).name, "split": usage, "n": int(len(test)),
              "stack_fitted_on": f"val (n={len(val)})" if need_val else None, "threads": num_threads,
              "rows": rows, "specs": {k_: str(v) for k_, v in specs.items()}}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ensembles.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "ensembles.md").write_text(render_markdown(result))
    return result


def render_markdown(result: dict) -> str:
    lines = ["# Ensembles against their members", "",
             f"On {result['data']} `{result['split']}` (n={result['n']}); latency: median single-face `predict` at "
             f"{result['threads']} thread(s), an ensemble's being the sum of its members'. Stacking is fitted on "
             f"{result['stack_fitted_on'] or '-'}, never on the test split.", "",
             rows_table(result["rows"])]
    return "\n".join(lines) + "\n"


def rows_table(rows: Sequence[dict], latency_header: str = "ms/face", code: bool = True) -> str:
    """The Markdown table of :func:`evaluate_ensembles` or :func:`compare_members` rows: model
    (in backticks with ``code``), role, accuracy, macro-F1, latency per face under
    ``latency_header``, and the gain over the best member if the rows have one."""
    gain = any("gain_over_best_member_pts" in r for r in rows)
    out = []
    for r in rows:
        row = [f"`{r['model']}`" if code else r["model"], r["role"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}",
               f"{r['latency_ms_per_face']:.3f}"]
        if gain:
            g = r.get("gain_over_best_member_pts")
            row.append("" if g is None else f"{g:+.2f}")
        out.append(row)
    return markdown_table(["model", "role", "accuracy", "macro-F1", latency_header]
                          + (["gain over best member (pts)"] if gain else []), out, "llrrrr" if gain else "llrrr")


def compare_members(member_paths: Sequence[str | Path], fused_path: str | Path, dataset, usage: str = "PublicTest",
                    runs: int = 200) -> list[dict]:
    """Accuracy and per-face latency (float32 TFLite, 1 thread) of each Keras member and of their
    fusion into one model (``emoedge.train.fusion.fuse_files``)."""
    import tempfile

    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.keras.io import load_keras

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in [*member_paths, fused_path]:
            run = evaluate_model(p, dataset, usage=usage)
            tfl = Path(tmp) / (Path(p).stem + ".tflite")
            tfl.write_bytes(convert_keras(load_keras(p), "float32"))
            clf = TFLiteClassifier(tfl, num_threads=1)
            x = np.zeros((1, 48, 48, 1), np.float32)
            ms = time_calls(lambda clf=clf, x=x: clf.predict(x), runs, warmup=20)
            rows.append({"model": f"{Path(p).parent.name}/{Path(p).name}",
                         "role": "ensemble" if p == fused_path else "member",
                         "accuracy": run.evaluation.accuracy, "macro_f1": run.evaluation.macro_f1,
                         "latency_ms_per_face": float(np.mean(ms))})
    return rows
