"""Fit temperature scaling on the validation split, record it in the model's manifests, and
report expected calibration error before and after with a reliability diagram."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from emoedge.data.datasets import FaceDataset
from emoedge.edge.models import manifest_path
from emoedge.edge.temperature import apply_temperature, fit_temperature, plot_reliability, reliability
from emoedge.evaluate.scoring import evaluate_model


def calibrate(model_path: str | Path, dataset: FaceDataset, usage: str = "val", out_dir: str | Path | None = None,
              write_to: Sequence[str | Path] = ()) -> dict:
    """Fit T on ``usage`` (default: the validation split carved from training), write
    ``temperature`` into the manifests of ``model_path`` and every file in ``write_to``."""
    run = evaluate_model(model_path, dataset, usage=usage)
    t = fit_temperature(run.probs, run.labels)
    before = reliability(run.probs, run.labels)
    after = reliability(apply_temperature(run.probs, t), run.labels)
    result = {"model": Path(model_path).name, "split": usage, "n": int(len(run.labels)), "temperature": t,
              "ece_before": before.ece, "ece_after": after.ece}
    for target in [model_path, *write_to]:
        mp = manifest_path(target)
        if mp.is_file():
            m = json.loads(mp.read_text())
            m["temperature"] = t
            m["calibration_of_probabilities"] = {k: result[k] for k in ("split", "n", "ece_before", "ece_after")}
            mp.write_text(json.dumps(m, indent=2) + "\n")
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_reliability(before, after, out / "reliability.png",
                         f"{Path(model_path).name}: T = {t:.2f} on {usage} (n={len(run.labels)})")
    return result
