"""Scoring a model on a dataset (emoedge.evaluate.evaluate_model) across datasets with a class mapping."""

import cv2
import numpy as np
import pytest


@pytest.mark.shared
def test_cross_dataset_check_with_a_class_mapping(tmp_path, fer2013, tiny_tflite):
    """A 7-class model scored on a folder dataset whose folders are named differently."""
    from emoedge.data.datasets import load_folder, select_classes
    from emoedge.evaluate import evaluate_model

    names = {"joy": "happy", "calm": "neutral", "shock": "surprise"}
    part = fer2013.split("PublicTest")
    for folder, cls in names.items():
        d = tmp_path / "lab" / folder
        d.mkdir(parents=True)
        for i in np.flatnonzero(part.labels == fer2013.class_names.index(cls))[:6]:
            cv2.imwrite(str(d / f"{i}.png"), part.images[i])
    ds = select_classes(load_folder(tmp_path / "lab"), rename=names)
    assert set(ds.class_names) == {"happy", "neutral", "surprise"}
    run = evaluate_model(tiny_tflite, ds)
    assert run.evaluation.n == 18 and run.evaluation.class_names == fer2013.class_names
