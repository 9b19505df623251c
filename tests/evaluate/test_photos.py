"""End-to-end evaluation on labelled photos (emoedge.evaluate.photos) through the runtime's detector
and classifier, on a synthetic photo tree built from a real face photo, and on ../shared."""

import json
import shutil

import cv2
import numpy as np
import pytest
from testdata import SHARED, need_shared

from emoedge.cli import main
from emoedge.edge.faces.detect import DETECTORS
from emoedge.evaluate.photos import NO_FACE, evaluate_photos, pad_image, read_photo

PHOTOS = SHARED / "data" / "facial_expressions"


@pytest.fixture(scope="module")
def photo_tree(tmp_path_factory):
    """happy: 2 face photos (one a WebP named .jpg), 1 flat gray photo, 1 text file;
    sad: 1 face photo; contempt (not a class of the 7-class model): 1 face photo."""
    cbook = pytest.importorskip("matplotlib.cbook")
    face = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    root = tmp_path_factory.mktemp("photos")
    for d in ("happy", "sad", "contempt"):
        (root / d).mkdir()
    shutil.copy(face, root / "happy" / "a.jpg")
    shutil.copy(face, root / "sad" / "a.jpg")
    shutil.copy(face, root / "contempt" / "a.jpg")
    ok, webp = cv2.imencode(".webp", cv2.imread(str(face)))
    assert ok
    (root / "happy" / "webp_named.jpg").write_bytes(webp.tobytes())
    cv2.imwrite(str(root / "happy" / "gray.png"), np.full((300, 300, 3), 128, np.uint8))
    (root / "happy" / "notes.txt").write_text("not an image\n")
    (root / "LICENSE").write_text("a file at the root is not a class\n")
    return root


@pytest.fixture(scope="module")
def result(photo_tree):
    return evaluate_photos("fast", photo_tree, detector="haar")


def test_pad_adds_pad_times_the_longer_side_on_every_side():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, -1] = 255   # the right edge column, replicated into the border
    out = pad_image(img, 0.5)
    assert out.shape == (40 + 2 * 50, 100 + 2 * 50, 3)
    assert (out[:, -50:] == 255).all() and (out[50:90, 50:150] == img).all()
    assert pad_image(img, 0.0) is img
    assert pad_image(img[:, :, 0], 0.25).shape == (40 + 50, 150)
    with pytest.raises(ValueError):
        pad_image(img, -0.1)


def test_read_photo_decodes_by_content_not_suffix(photo_tree):
    assert read_photo(photo_tree / "happy" / "webp_named.jpg").shape[2] == 3
    assert read_photo(photo_tree / "happy" / "notes.txt") is None


def test_counts_detection_and_skipped(result, photo_tree):
    assert result.n_photos == 4                   # happy a.jpg, webp, gray; sad a.jpg
    assert result.skipped_classes == ("contempt",)
    assert [p.split("/")[-1] for p in result.unreadable] == ["notes.txt"]
    assert result.n_detected == 3 and result.detection_rate == pytest.approx(0.75)
    by_name = {p.path.split("/")[-2] + "/" + p.path.split("/")[-1]: p for p in result.photos}
    assert by_name["happy/gray.png"].predicted == NO_FACE and by_name["happy/gray.png"].box is None
    assert all(by_name[k].predicted in result.class_names for k in ("happy/a.jpg", "happy/webp_named.jpg"))
    assert result.evaluation.class_names[-1] == NO_FACE and result.evaluation.n == 4


def test_no_face_is_wrong_in_accuracy_and_left_out_of_accuracy_detected(result):
    right = sum(p.predicted == p.label for p in result.photos)
    assert result.accuracy == pytest.approx(right / 4)
    assert result.accuracy_detected == pytest.approx(right / 3)
    # the same face photo is in happy and sad: one prediction, so at most one of the two is right
    same = [p for p in result.photos if p.path.endswith("/a.jpg")]
    assert len(same) == 2 and same[0].predicted == same[1].predicted
    cm = np.array(result.evaluation.confusion_matrix)
    assert cm[:, -1].sum() == 1 and cm[-1].sum() == 0   # one photo predicted "no face"; no true "no face"
    assert result.evaluation_detected.n == 3


def test_to_dict_is_json(result):
    d = json.loads(json.dumps(result.to_dict()))
    assert d["n_photos"] == 4 and d["skipped_classes"] == ["contempt"] and d["n_unreadable"] == 1
    assert d["detector"] == "haar" and d["pad"] == 0.0 and len(d["photos"]) == 4
    assert set(d["evaluation"]["per_class"]) == set(result.class_names) | {NO_FACE}


def test_cli_evaluate_with_detector(photo_tree, tmp_path, capsys):
    out = tmp_path / "e2e.json"
    assert main(["evaluate", "--model", "fast", "--data", str(photo_tree), "--detector", "haar",
                 "--pad", "0.1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "detection rate" in text and "accuracy on detected" in text and "macro-F1" in text
    d = json.loads(out.read_text())
    assert d["n_photos"] == 4 and d["pad"] == 0.1


def test_cli_detector_choices_are_the_registry():
    import argparse

    from emoedge.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("evaluate", "classify", "run"):
        det = next(a for a in sub.choices[command]._actions if a.dest == "detector")
        assert list(det.choices) == list(DETECTORS), command


@pytest.mark.shared
def test_real_photos_small_subset(tmp_path):
    need_shared(PHOTOS)
    root = tmp_path / "subset"
    for cls in ("happy", "neutral", "surprise"):
        (root / cls).mkdir(parents=True)
        for f in sorted((PHOTOS / cls).iterdir())[:20]:
            (root / cls / f.name).symlink_to(f)
    r = evaluate_photos("fast", root, detector="haar", pad=0.5)
    assert r.n_photos + len(r.unreadable) == 60
    assert 0 < r.detection_rate <= 1
    assert 0 <= r.accuracy <= (r.accuracy_detected or 0) <= 1
