"""Ship a trained run as one of the shipped models: the Keras file (without optimizer state), its
float32 TFLite with manifest, an evaluation on the test split and a model card, all in the folder
the caller names (``emoedge/edge/models`` of a source checkout to put it into the package), and the
reports (quantization, calibration) in another. Nothing is written anywhere else."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emoedge.convert.calibration import CalibrationSet
from emoedge.convert.modelcard import headline_evaluation, render_model_card, shipped_files, with_files
from emoedge.convert.tflite import convert_file
from emoedge.core.errors import BadInputError
from emoedge.core.fileio import atomic_write_bytes
from emoedge.core.shipped import SHIPPED, manifest_path
from emoedge.data.datasets import FaceDataset
from emoedge.evaluate import evaluate_model
from emoedge.tables import markdown_table


def ship(run_dir: str | Path, name: str, dataset: FaceDataset, command: str, usage: str = "PublicTest", *,
         out_dir: str | Path, report_dir: str | Path, formats: tuple[str, ...] = (),
         calibration: CalibrationSet | None = None) -> dict[str, Path]:
    """Ship ``run_dir``'s model as ``name`` into ``out_dir`` (model files, manifests, evaluation,
    run record, card); ``formats`` (e.g. int8, uint8, onnx, onnx-int8) are converted beside it from
    ``calibration``. The quantization report, conversion summary and calibration (reliability
    diagram) go to ``report_dir``. Both are required: nothing is written into the package unless
    ``out_dir`` is its models folder (``emoedge.core.shipped.MODELS_DIR``)."""
    from emoedge.keras.io import load_keras

    run_dir, models_dir, report_dir = Path(run_dir), Path(out_dir), Path(report_dir)
    if name not in SHIPPED:
        raise BadInputError(f"{name!r} is not a shipped model name ({sorted(SHIPPED)})")
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"{run_dir / 'run.json'}: not a training run (no run.json)")
    run = json.loads((run_dir / "run.json").read_text())
    class_names = run["class_names"]
    models_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "model.hoglbp.npz").is_file() and not (run_dir / "model.keras").is_file():
        return _ship_handcrafted(run_dir, name, run, dataset, command, usage, models_dir, report_dir)
    with tempfile.TemporaryDirectory() as tmp:
        # re-save without optimizer state: half the size, same predictions
        model = load_keras(run_dir / "model.keras")
        tmp_keras = Path(tmp) / f"{name}.keras"
        model.save(tmp_keras)
        atomic_write_bytes(models_dir / f"{name}.keras", tmp_keras.read_bytes())
    keras_path = models_dir / f"{name}.keras"
    tfl = convert_file(keras_path, models_dir / f"{name}.tflite", "float32", class_names)
    # the Keras model gets a manifest of its own (class names, preprocessing, source run)
    manifest = json.loads(manifest_path(tfl).read_text())
    keras_manifest = {"format": "keras", "file": keras_path.name, "class_names": class_names,
                      "preprocessing": manifest["preprocessing"], "training_run": run["config"],
                      "data_fingerprint": run["data"]["fingerprint_sha256"]}
    atomic_write_bytes(manifest_path(keras_path), (json.dumps(keras_manifest, indent=2) + "\n").encode())
    ev, ev_dict = _evaluate_and_keep_records(tfl, name, dataset, usage, run_dir, models_dir)
    rdir = report_dir
    extra = {}
    out = {"keras": keras_path, "tflite": tfl}
    if formats:
        from emoedge.convert.artifacts import convert_model, write_summary
        from emoedge.convert.report import quantization_report

        results = convert_model(keras_path, [f for f in formats if f != "float32"], models_dir, class_names,
                                calibration, stem=name)
        arts = [r.path for r in results if r.status == "ok" and r.path is not None]
        for r in results:
            if r.path is not None:
                out[r.format] = r.path
        rdir.mkdir(parents=True, exist_ok=True)
        write_summary(results, rdir)
        rep = quantization_report(keras_path, [tfl] + arts, dataset, usage, rdir, calibration, layers=True)
        extra["Quantization"] = quantization_section(rep, results)
        out["report"] = rdir / "quantization_report.md"
    _write_reference(models_dir, name, ev, tfl.name, dataset, usage)
    # temperature scaling on the validation split carved from training, recorded in every manifest
    others = [p for p in sorted(models_dir.glob(f"{name}.*")) if p.suffix in (".tflite", ".onnx")]
    extra["Calibration"] = _calibration_section(keras_path, dataset, rdir, others)
    extra["Class prior and uncertain threshold"] = _record_decisions(run, dataset, [keras_path, *others])
    from emoedge.convert.lineage import lineage

    files = shipped_files(models_dir, name)      # the card lists what is beside it, headlines the int8 file
    card_eval = headline_evaluation(models_dir, files, ev_dict, dataset, usage)
    card = render_model_card(name, SHIPPED[name], run, card_eval, files, command, extra, steps=lineage(run_dir),
                             data_format=dataset.meta.get("format"), recipe=_recipe_of(name))
    (models_dir / f"{name}.md").write_text(card)
    out["card"] = models_dir / f"{name}.md"
    return out


def _recipe_of(name: str):
    """The shipped model's recipe (its card lists the recipe's commands), or None if it has none yet."""
    from emoedge.recipes import available_recipes, load_recipe

    return load_recipe(name) if name in available_recipes() else None


def _evaluate_and_keep_records(model: Path, name: str, dataset: FaceDataset, usage: str, run_dir: Path,
                               models_dir: Path):
    """Evaluate the shipped file; keep NAME.eval.json and the training record NAME.run.json beside it.
    Returns the evaluation and its record."""
    ev = evaluate_model(model, dataset, usage=usage)
    ev_dict = {"model": model.name, "data": Path(dataset.source).name, "split": usage, **ev.evaluation.to_dict()}
    (models_dir / f"{name}.eval.json").write_text(json.dumps(ev_dict, indent=2) + "\n")
    shutil.copy(run_dir / "run.json", models_dir / f"{name}.run.json")
    return ev, ev_dict


def _write_reference(models_dir: Path, name: str, ev, source_name: str, dataset: FaceDataset, usage: str) -> None:
    """The class distribution the runtime's drift monitor compares live predictions with, in every manifest."""
    pred = ev.probs.argmax(axis=1)
    reference = {c: float((pred == i).mean()) for i, c in enumerate(ev.evaluation.class_names)}
    abstention = float((ev.probs.max(axis=1) < 0.4).mean())
    for mp in sorted(models_dir.glob(f"{name}.*json")):
        if mp.name.endswith((".eval.json", ".run.json")):
            continue
        m = json.loads(mp.read_text())
        m["reference_distribution"] = reference
        m["reference_abstention"] = abstention
        m["reference_source"] = f"predictions of {source_name} on {Path(dataset.source).name} {usage} (n={len(pred)})"
        mp.write_text(json.dumps(m, indent=2) + "\n")


def _calibration_section(model_path: Path, dataset: FaceDataset, rdir: Path, others) -> str:
    from emoedge.evaluate import calibrate

    return calibration_sentence(calibrate(model_path, dataset, usage="val", out_dir=rdir, write_to=others))


def calibration_sentence(cal: dict) -> str:
    """The card's line on temperature scaling, from :func:`emoedge.evaluate.calibrate`'s result."""
    kept = f" ({cal['note']})" if cal.get("note", "").startswith("T kept") else ""
    return (f"Temperature scaling fitted on the validation split (n={cal['n']}) of `{cal['model']}`: T = "
            f"{cal['temperature']:.3f}{kept}; expected calibration error {cal['ece_before']:.4f} before, "
            f"{cal['ece_after']:.4f} after. The runtime applies T before smoothing and before the "
            f"`uncertain` threshold. Reliability diagram: `reliability.png` in the report folder.")


def _record_decisions(run: dict, dataset: FaceDataset, files: list[Path]) -> str:
    """The training class mix (for ``runtime.class_prior``) and the ``uncertain`` threshold chosen on
    validation from the shipped file's calibrated probabilities, in every manifest of the model."""
    from emoedge.core.temperature import apply_temperature
    from emoedge.data.balance import training_mix
    from emoedge.data.splits import split_seed_of, standard_splits
    from emoedge.edge.inference.prior import apply_prior, prior_shift
    from emoedge.evaluate.uncertain import choose_prior_strength, choose_uncertain_below

    cfg = run["config"]
    mix = run["data"].get("class_mix")
    if mix is None:   # a run recorded before the mix was: the same split and weighting, computed again
        train = standard_splits(dataset, val_fraction=cfg.get("val_fraction", 0.1), seed=split_seed_of(run))["train"]
        mix = training_mix(train.labels, dataset.class_names, cfg.get("class_balance", "none"), cfg.get("seed", 0))
    shipped = next((f for f in files if f.name.endswith(".int8.tflite")), files[-1])
    manifest = json.loads(manifest_path(shipped).read_text())
    val = evaluate_model(shipped, dataset, usage="val")
    calibrated = apply_temperature(val.probs, float(manifest.get("temperature", 1.0)))
    trained = np.array([mix["trained"][c] for c in val.evaluation.class_names])
    prior = choose_prior_strength(calibrated, val.labels, trained)
    shift = prior_shift(prior["prior"], {"class_mix": mix}, val.evaluation.class_names, prior["strength"])
    choice = choose_uncertain_below(apply_prior(calibrated, shift), val.labels)   # as the runtime sees them
    for f in files:
        mp = manifest_path(f)
        if mp.is_file():
            m = json.loads(mp.read_text())
            m["class_mix"] = mix
            m["class_prior"] = prior
            m["uncertain_below"] = choice.threshold
            m["uncertain_choice"] = {"file": shipped.name, "split": "val", **choice.to_dict()}
            atomic_write_bytes(mp, (json.dumps(m, indent=2) + "\n").encode())
    shares = ", ".join(f"{c} {v:.1%}" for c, v in mix["trained"].items())
    return (f"Training class mix (what the probabilities assume; `runtime.class_prior: trained`): {shares} "
            f"({mix['weighting']}). The deployment prior it ships with (`runtime.class_prior: model`, the default): "
            f"{prior['prior']} at strength {prior['strength']:g}, chosen on the validation split: accuracy "
            f"{prior['val_accuracy']:.2%} and balanced accuracy {prior['val_balanced_accuracy']:.3f}, against "
            f"{prior['trained_val_accuracy']:.2%} and {prior['trained_val_balanced_accuracy']:.3f} under the trained "
            f"mix ({prior['rule']}). `uncertain` threshold chosen on the validation split from `{shipped.name}`'s "
            f"calibrated probabilities under that prior: {choice.threshold:.2f} ({choice.share_uncertain:.1%} of "
            f"validation faces below it; accuracy {choice.accuracy_above:.1%} at or above it); "
            f"{choice.to_dict()['rule']}.")


def _ship_handcrafted(run_dir: Path, name: str, run: dict, dataset: FaceDataset, command: str, usage: str,
                      models_dir: Path, report_dir: Path) -> dict[str, Path]:
    """Ship a HOG+LBP run: the .hoglbp.npz (numpy only on the device), manifest, evaluation, calibration, card."""
    from emoedge.core.preprocess import PREPROCESSING

    src = run_dir / "model.hoglbp.npz"
    dst = models_dir / f"{name}.hoglbp.npz"
    atomic_write_bytes(dst, src.read_bytes())
    from emoedge.core.fileio import sha256_file

    manifest = {"format": "hoglbp", "mode": "hoglbp", "file": dst.name, "sha256": sha256_file(dst),
                "size_bytes": dst.stat().st_size, "class_names": run["class_names"],
                "preprocessing": run.get("preprocessing", PREPROCESSING), "training_run": run["config"],
                "data_fingerprint": run["data"]["fingerprint_sha256"]}
    atomic_write_bytes(manifest_path(dst), (json.dumps(manifest, indent=2) + "\n").encode())
    ev, ev_dict = _evaluate_and_keep_records(dst, name, dataset, usage, run_dir, models_dir)
    _write_reference(models_dir, name, ev, dst.name, dataset, usage)
    rdir = report_dir
    extra = {"Calibration": _calibration_section(dst, dataset, rdir, []),
             "Runtime": ("Runs on numpy and OpenCV alone, with no interpreter: `emoedge run --model " + name
                         + " --model-format hoglbp`. No quantization: the features and the linear layer are float32.")}
    card = render_model_card(name, SHIPPED[name], run, ev_dict, {dst.name: dst.stat().st_size}, command, extra,
                             data_format=dataset.meta.get("format"), recipe=_recipe_of(name))
    (models_dir / f"{name}.md").write_text(card)
    return {"hoglbp": dst, "card": models_dir / f"{name}.md"}


FLOAT_FORMATS = ("keras", "float32", "onnx")


def move_float_masters(models_dir: str | Path, name: str, dest: str | Path) -> list[Path]:
    """Move a shipped model's float masters (``.keras``, float ``.tflite``, float ``.onnx`` and their
    manifests) out of the package to ``dest``: the device needs only the quantized files, and
    multi-megabyte float copies do not belong in the repository. Returns the moved files."""
    from emoedge.core.formats import get_format

    models_dir, dest = Path(models_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for fmt in FLOAT_FORMATS:
        src = models_dir / f"{name}{get_format(fmt).suffix}"
        for f in (src, manifest_path(src)):
            if f.is_file():
                target = dest / f.name
                shutil.move(str(f), target)
                moved.append(target)
    card = models_dir / f"{name}.md"
    if moved and card.is_file():
        text = with_files(card.read_text(), shipped_files(models_dir, name))   # the files left beside it
        card.write_text(text + "\n## Float masters\n\nNot in the package (only the quantized device "
                        "files are): " + ", ".join(f"`{p.name}`" for p in moved if not p.name.endswith(".json"))
                        + " were moved out after shipping. By name, a float master is rebuilt from the int8 file "
                        f"(`emoedge evaluate --model {name} --format keras`, `init_from={name}`, `emoedge convert "
                        f"--model {name}@keras`; docs/models/masters.md); the recipe above retrains the originals.\n")
    return moved


def quantization_section(rep: dict, results) -> str:
    """The model card's quantization table and the conversion targets, from the report."""
    arts = {a["format"]: a for a in rep["artifacts"]}
    f32 = arts.get("float32")
    lines = [f"On {rep['data']} `{rep['split']}` (n={rep['n']}), against the float Keras model:", "",
             markdown_table(["artifact", "format", "size (KiB)", "accuracy", "delta (pts)", "macro-F1", "agreement",
                             "mean KL"],
                            [[f"`{a['file']}`", a["format"], f"{a['size_bytes'] / 1024:.0f}", f"{a['accuracy']:.4f}",
                              f"{a['delta_accuracy_pts']:+.2f}", f"{a['macro_f1']:.4f}", f"{a['agreement']:.4f}",
                              f"{a['mean_kl']:.5f}"] for a in rep["artifacts"]]
                            + [["-", r.format, "", "", "", "", "", f"{r.status}: {r.message}"]
                               for r in results if r.status != "ok"], "llrrrrrr")]
    i8 = arts.get("int8")
    if i8 and f32:
        ok_loss = -i8["delta_accuracy_pts"] <= 0.3
        ok_agree = i8["agreement"] >= 0.98
        ok_size = i8["size_bytes"] <= f32["size_bytes"] / 3
        lines += ["", "Targets (int8): accuracy loss <= 0.3 pts: "
                  f"{-i8['delta_accuracy_pts']:.2f} pts ({'met' if ok_loss else 'NOT met'}); agreement >= 98%: "
                  f"{i8['agreement']:.2%} ({'met' if ok_agree else 'NOT met'}); size <= 1/3 of float TFLite: "
                  f"{i8['size_bytes'] / f32['size_bytes']:.2f} ({'met' if ok_size else 'NOT met'})."]
    if rep.get("layers"):
        flagged = rep["layers"]["flagged"]
        lines += ["", f"Per-layer error (TFLite quantization debugger): {len(rep['layers']['table'])} tensors, "
                  f"{len(flagged)} flagged above RMSE/scale {rep['layers']['flag_above']}"
                  + (f": {', '.join(flagged)}" if flagged else "") + "."]
    return "\n".join(lines)
