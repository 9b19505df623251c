"""Training the HOG+LBP linear baseline (scikit-learn), recorded like a CNN run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from emoedge.core.preprocess import PREPROCESSING, normalize
from emoedge.data.datasets import FaceDataset
from emoedge.data.splits import SPLIT_SEED, standard_splits, stratified_split
from emoedge.edge.engines.handcrafted import HogLbpClassifier, features
from emoedge.metrics import evaluate_predictions


def versions() -> dict[str, str]:
    import platform

    import cv2
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__, "platform": platform.platform(), "machine": platform.machine()}


def train_hoglbp(dataset: FaceDataset, out_dir: str | Path, val_fraction: float = 0.1, seed: int = SPLIT_SEED,
                 c: float = 0.05, max_train_items: int | None = None, class_balance: str = "none") -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sp = standard_splits(dataset, val_fraction=val_fraction, seed=seed)
    train = sp["train"]
    if max_train_items and len(train) > max_train_items:
        f = max_train_items / len(train)
        train = train.subset(stratified_split(train.labels, [f, 1 - f], seed)[0])
    t0 = time.time()
    x = features(train.images)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=300, class_weight="balanced" if class_balance == "weights" else None)
    clf.fit(scaler.transform(x), train.labels)
    coef = np.zeros((dataset.num_classes, x.shape[1]), np.float32)
    icpt = np.full(dataset.num_classes, -1e9, np.float32)          # classes absent from training never win
    coef[clf.classes_] = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_, clf.coef_])
    icpt[clf.classes_] = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
    path = out / "model.hoglbp.npz"
    np.savez(path, coef=coef, intercept=icpt, mean=scaler.mean_.astype(np.float32),
             scale=np.where(scaler.scale_ > 0, scaler.scale_, 1).astype(np.float32),
             class_names=np.array(dataset.class_names))
    seconds = time.time() - t0
    model = HogLbpClassifier(path)
    evals = {}
    for k in ("val", "test"):
        if sp.get(k) is not None and len(sp[k]):
            evals[k] = evaluate_predictions(sp[k].labels, model.predict(normalize(sp[k].images)),
                                            dataset.class_names).to_dict()
    record = {"config": {"arch": "hog_lbp", "C": c, "val_fraction": val_fraction, "seed": seed,
                         "class_balance": class_balance, "features": "HOG 900 (16px blocks, 8px cells, 9 bins) + "
                                                                     "uniform LBP 4x4 grid x 59 bins"},
              "class_names": list(dataset.class_names), "preprocessing": PREPROCESSING,
              "data": {"source": dataset.source, "fingerprint_sha256": dataset.fingerprint(),
                       "train_items": len(train), "val_items": len(sp["val"])},
              "params": int(coef.size + icpt.size + 2 * x.shape[1]), "train_seconds": round(seconds, 1),
              "versions": versions(), "command": " ".join(sys.argv), **evals}
    (out / "run.json").write_text(json.dumps(record, indent=2))
    return record
