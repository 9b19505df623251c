"""Put a trained run into the package as a shipped model: the Keras file (without optimizer
state), its float32 TFLite with manifest, an evaluation on the test split and a model card."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from emoedge.convert.tflite import atomic_write_bytes, convert_file
from emoedge.data.datasets import FaceDataset
from emoedge.edge.models import MODELS_DIR, SHIPPED, manifest_path
from emoedge.evaluate import evaluate_model
from emoedge.modelcard import render_model_card


def ship(run_dir: str | Path, name: str, dataset: FaceDataset, command: str, usage: str = "PublicTest",
         models_dir: str | Path = MODELS_DIR) -> dict[str, Path]:
    import keras

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not a shipped model name ({sorted(SHIPPED)})")
    run = json.loads((run_dir / "run.json").read_text())
    class_names = run["class_names"]
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # re-save without optimizer state: half the size, same predictions
        model = keras.models.load_model(run_dir / "model.keras", compile=False, safe_mode=False)
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
    ev = evaluate_model(tfl, dataset, usage=usage)
    ev_dict = {"model": tfl.name, "data": Path(dataset.source).name, "split": usage, **ev.evaluation.to_dict()}
    (models_dir / f"{name}.eval.json").write_text(json.dumps(ev_dict, indent=2) + "\n")
    shutil.copy(run_dir / "run.json", models_dir / f"{name}.run.json")
    files = {p.name: p.stat().st_size for p in (keras_path, tfl)}
    card = render_model_card(name, SHIPPED[name], run, ev_dict, files, command)
    (models_dir / f"{name}.md").write_text(card)
    return {"keras": keras_path, "tflite": tfl, "card": models_dir / f"{name}.md"}
