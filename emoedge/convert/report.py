"""The quantization report: what each converted artifact costs against its float source.

For every artifact on one labelled split: accuracy and macro-F1 and their deltas (in points),
per-class accuracy (recall) deltas, top-1 agreement with the float model, mean KL divergence of
the outputs, and file size. For full-integer TFLite, a per-layer error table from TFLite's
quantization debugger flags layers whose RMSE/scale is far above the ~0.29 (1/sqrt(12)) of a
healthy layer; optionally those layers are kept in float (selective quantization) and that
model is scored too.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emoedge.convert.calibration import CalibrationSet
from emoedge.core.formats import format_of
from emoedge.data.datasets import FaceDataset
from emoedge.evaluate import evaluate_model
from emoedge.metrics import Evaluation, evaluate_predictions
from emoedge.tables import markdown_table

HEALTHY_RMSE_PER_SCALE = 1 / np.sqrt(12)   # ~0.29: uniform rounding error of one quantization step
FLAG_RMSE_PER_SCALE = 0.7


@dataclass(frozen=True)
class ArtifactScore:
    file: str
    format: str
    size_bytes: int
    accuracy: float
    macro_f1: float
    delta_accuracy_pts: float
    delta_macro_f1: float
    agreement: float                     # top-1 agreement with the float model
    mean_kl: float                       # mean KL(float || artifact) of the class distributions
    per_class_accuracy: dict[str, float]
    per_class_accuracy_delta_pts: dict[str, float]


@dataclass(frozen=True)
class LayerError:
    tensor: str
    op: str
    rmse_per_scale: float
    scale: float
    flagged: bool


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    p = np.clip(p, eps, 1.0)
    q = np.clip(q, eps, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    return (p * np.log(p / q)).sum(axis=1)


def score(file: str | Path, probs: np.ndarray, ref_probs: np.ndarray, labels: np.ndarray,
          class_names: Sequence[str], ref: Evaluation) -> ArtifactScore:
    ev = evaluate_predictions(labels, probs, class_names)
    rec = {c.name: c.recall for c in ev.per_class}
    ref_rec = {c.name: c.recall for c in ref.per_class}
    p = Path(file)
    return ArtifactScore(
        file=p.name, format=format_of(p).name if p.suffix else "?", size_bytes=p.stat().st_size if p.exists() else 0,
        accuracy=ev.accuracy, macro_f1=ev.macro_f1,
        delta_accuracy_pts=100 * (ev.accuracy - ref.accuracy), delta_macro_f1=ev.macro_f1 - ref.macro_f1,
        agreement=float((probs.argmax(1) == ref_probs.argmax(1)).mean()),
        mean_kl=max(0.0, float(kl_divergence(ref_probs, probs).mean())),
        per_class_accuracy=rec, per_class_accuracy_delta_pts={c: 100 * (rec[c] - ref_rec[c]) for c in rec})


def layer_errors(keras_model, calibration: CalibrationSet, debug_samples: np.ndarray,
                 flag_above: float = FLAG_RMSE_PER_SCALE) -> tuple[list[LayerError], object]:
    """Per-layer RMSE/scale of the int8 model against float, from TFLite's quantization debugger.
    Returns the table and the converter (for selective quantization)."""
    import tensorflow as tf

    cal = calibration.x

    def rep():
        for i in range(len(cal)):
            yield [cal[i:i + 1]]

    def debug_data():
        for i in range(len(debug_samples)):
            yield [debug_samples[i:i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=debug_data)
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    buf.seek(0)
    import csv

    rows = list(csv.DictReader(buf))
    out = []
    for r in rows:
        scale = float(r["scale"])
        mse = float(r["mean_squared_error"])
        rps = float(np.sqrt(mse) / scale) if scale > 0 else float("nan")
        out.append(LayerError(r["tensor_name"], r["op_name"], rps, scale, bool(rps > flag_above)))
    return out, (conv, rep, debug_data)


def selective_model(converter_bundle, denylisted: Sequence[str]) -> bytes:
    """The int8 model with the named layers kept in float (float input/output)."""
    import tensorflow as tf

    conv, _, debug_data = converter_bundle
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted))
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=debug_data, debug_options=opts)
    return dbg.get_nondebug_quantized_model()


def quantization_report(float_model: str | Path, artifacts: Sequence[str | Path], dataset: FaceDataset,
                        usage: str, out_dir: str | Path, calibration: CalibrationSet | None = None,
                        layers: bool = True, selective: bool = False, debug_size: int = 200) -> dict:
    """Score ``artifacts`` against ``float_model`` (Keras) on ``usage`` of ``dataset``; write
    ``quantization_report.json``, ``.md`` and ``per_class_accuracy.png`` into ``out_dir``."""
    from emoedge.keras.io import load_keras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref_run = evaluate_model(float_model, dataset, usage=usage)
    names = ref_run.evaluation.class_names
    labels = ref_run.labels
    ref_score = score(float_model, ref_run.probs, ref_run.probs, labels, names, ref_run.evaluation)
    scores = [ref_score]
    for a in artifacts:
        run = evaluate_model(a, dataset, usage=usage, class_names=names)
        scores.append(score(a, run.probs, ref_run.probs, labels, names, ref_run.evaluation))
    report: dict = {"float_model": Path(float_model).name, "data": Path(dataset.source).name, "split": usage,
                    "n": int(len(labels)), "class_names": list(names),
                    "artifacts": [asdict(s) for s in scores], "layers": None, "selective": None,
                    "calibration": None if calibration is None else calibration.describe()}
    if layers and calibration is not None:
        model = load_keras(float_model)
        rng = np.random.default_rng(0)
        from emoedge.core.preprocess import normalize

        sub = dataset.split(usage)
        debug = normalize(sub.images[rng.choice(len(sub), min(debug_size, len(sub)), replace=False)])
        table, bundle = layer_errors(model, calibration, debug)
        flagged = [t.tensor for t in table if t.flagged]
        report["layers"] = {"healthy_rmse_per_scale": HEALTHY_RMSE_PER_SCALE, "flag_above": FLAG_RMSE_PER_SCALE,
                            "table": [asdict(t) for t in table], "flagged": flagged}
        if selective and flagged:
            path = out / (Path(float_model).name.split(".")[0] + ".selective.tflite")
            path.write_bytes(selective_model(bundle, flagged))
            from emoedge.core.preprocess import normalize as _n
            from emoedge.edge.engines.interpreter import TFLiteClassifier

            probs = TFLiteClassifier(path).predict(_n(sub.images))
            s = score(path, probs, ref_run.probs, labels, names, ref_run.evaluation)
            report["selective"] = {"kept_in_float": flagged, **asdict(s)}
        elif selective:
            report["selective"] = {"kept_in_float": [], "note": "no layer was flagged; nothing to keep in float"}
    (out / "quantization_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "quantization_report.md").write_text(render_markdown(report))
    plot_per_class(report, out / "per_class_accuracy.png")
    return report


def render_markdown(r: dict) -> str:
    lines = [f"# Quantization report: `{r['float_model']}`", "",
             f"On {r['data']} `{r['split']}` (n={r['n']}); deltas are against the float Keras model, in "
             f"percentage points for accuracy. Agreement: share of faces where the artifact's top-1 class equals "
             f"the float model's. KL: mean KL(float || artifact) of the class distributions.", "",
             markdown_table(["file", "format", "size (KiB)", "accuracy", "delta acc (pts)", "macro-F1", "delta F1",
                             "agreement", "mean KL"],
                            [[f"`{a['file']}`", a["format"], f"{a['size_bytes'] / 1024:.0f}", f"{a['accuracy']:.4f}",
                              f"{a['delta_accuracy_pts']:+.2f}", f"{a['macro_f1']:.4f}", f"{a['delta_macro_f1']:+.4f}",
                              f"{a['agreement']:.4f}", f"{a['mean_kl']:.5f}"] for a in r["artifacts"]],
                            "llrrrrrrr"),
             "", "Per-class accuracy (recall) delta in points:", "",
             markdown_table(["file", *r["class_names"]],
                            [[f"`{a['file']}`", *(f"{a['per_class_accuracy_delta_pts'][c]:+.1f}"
                                                  for c in r["class_names"])] for a in r["artifacts"][1:]],
                            "l" + "r" * len(r["class_names"]))]
    if r.get("layers"):
        L = r["layers"]
        lines += ["", "## Per-layer quantization error (int8, TFLite quantization debugger)", "",
                  f"RMSE/scale of each layer's dequantized output against float; a healthy layer is near "
                  f"{L['healthy_rmse_per_scale']:.2f}; flagged above {L['flag_above']}. "
                  f"Flagged: {', '.join(f'`{t}`' for t in L['flagged']) or 'none'}.", "",
                  markdown_table(["tensor", "op", "RMSE/scale", "scale", "flagged"],
                                 [[f"`{t['tensor']}`", t["op"], f"{t['rmse_per_scale']:.3f}", f"{t['scale']:.4g}",
                                   "**yes**" if t["flagged"] else ""] for t in L["table"]], "llrrl")]
    if r.get("selective"):
        s = r["selective"]
        lines += ["", "## Selective quantization", ""]
        if s.get("kept_in_float"):
            lines.append(f"Keeping {len(s['kept_in_float'])} flagged layer(s) in float: accuracy {s['accuracy']:.4f} "
                         f"({s['delta_accuracy_pts']:+.2f} pts), agreement {s['agreement']:.4f}, size "
                         f"{s['size_bytes'] / 1024:.0f} KiB.")
        else:
            lines.append(s.get("note", ""))
    if r.get("calibration"):
        c = r["calibration"]
        lines += ["", f"Calibration: {c['size']} faces from {c['source']}, "
                  f"fingerprint `{c['fingerprint_sha256'][:16]}`; per class {c['per_class']}."]
    return "\n".join(lines) + "\n"


def plot_per_class(r: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = r["class_names"]
    arts = r["artifacts"]
    k = len(names)
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * k + 2), 4))
    w = 0.8 / len(arts)
    for j, a in enumerate(arts):
        ax.bar(np.arange(k) + j * w - 0.4 + w / 2, [a["per_class_accuracy"][c] for c in names], w,
               label=f"{a['format']} ({a['accuracy']:.1%})")
    ax.set_xticks(range(k), names, rotation=30, ha="right")
    ax.set_ylabel("per-class accuracy (recall)")
    ax.set_ylim(0, 1)
    ax.set_title(f"per-class accuracy, float vs quantized ({r['split']}, n={r['n']})")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
