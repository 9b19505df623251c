"""Dataset loaders: synthetic files for every bad input, real files in ../shared for the counts."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from testdata import FER_CSV, FERPLUS_CSV, MEDIA, face_like, need_shared, write_fer_csv

from emoedge.data.datasets import (
    FER2013_CLASSES,
    DatasetError,
    ferplus_label_counts,
    ferplus_majority,
    load_dataset,
    load_fer2013_csv,
    load_ferplus,
    load_folder,
    select_classes,
)
from emoedge.data.splits import standard_splits, stratified_split


@pytest.fixture
def small_csv(tmp_path, rng):
    imgs, labels = face_like(rng, 70, 7)
    usages = ["Training"] * 56 + ["PublicTest"] * 14
    return write_fer_csv(tmp_path / "small.csv.gz", imgs, labels, usages), imgs, labels


def test_fer_csv_round_trip_gz(small_csv):
    path, imgs, labels = small_csv
    ds = load_fer2013_csv(path)
    assert len(ds) == 70 and ds.class_names == FER2013_CLASSES
    np.testing.assert_array_equal(ds.images, imgs)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.counts()["PublicTest"]["angry"] == 2
    assert len(load_fer2013_csv(path, usage=["PublicTest"])) == 14
    assert ds.fingerprint() == load_fer2013_csv(path).fingerprint()


def _bad_csv(tmp_path, body):
    p = tmp_path / "bad.csv"
    p.write_text("emotion,pixels,Usage\n" + body)
    return p


@pytest.mark.parametrize("row,match", [
    ("3," + " ".join(["1"] * 2303) + ",Training\n", r"row 1: 2303 pixels, expected 2304"),
    ("x," + " ".join(["1"] * 2304) + ",Training\n", r"row 1: emotion 'x' is not an integer"),
    ("9," + " ".join(["1"] * 2304) + ",Training\n", r"row 1: emotion 9 is outside 0..6"),
    ("3," + " ".join(["1"] * 2303) + " a,Training\n", r"row 1: pixels are not space-separated integers"),
    ("3," + " ".join(["300"] * 2304) + ",Training\n", r"row 1: pixel values outside 0..255"),
])
def test_bad_csv_rows_name_file_and_row(tmp_path, row, match):
    p = _bad_csv(tmp_path, row)
    with pytest.raises(DatasetError, match=match) as exc:
        load_fer2013_csv(p)
    assert str(p) in str(exc.value)


def test_bad_row_reports_its_number(tmp_path):
    good = "3," + " ".join(["1"] * 2304) + ",Training\n"
    p = _bad_csv(tmp_path, good + good + "3,1 2 3,Training\n")
    with pytest.raises(DatasetError, match="row 3: 3 pixels"):
        load_fer2013_csv(p)


def test_empty_and_missing_csv(tmp_path):
    with pytest.raises(DatasetError, match="empty"):
        load_fer2013_csv(_bad_csv(tmp_path, ""))
    with pytest.raises(DatasetError, match="not found"):
        load_fer2013_csv(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="lacks 'emotion' and 'pixels'"):
        p = tmp_path / "h.csv"
        p.write_text("a,b\n1,2\n")
        load_fer2013_csv(p)


def test_ferplus_majority_rule():
    cols = 10  # neutral happiness surprise sadness anger disgust fear contempt unknown NF
    v = np.zeros((5, cols), int)
    v[0, [0, 1]] = [6, 4]          # neutral 6 of 10 -> neutral
    v[1, [0, 1]] = [5, 5]          # tie: no majority
    v[2, [1, 3, 4]] = [5, 1, 4]    # single vote dropped: happiness 5 of 9 -> happiness
    v[3, [8, 0]] = [7, 3]          # unknown wins -> no majority
    v[4, [9]] = [10]               # not a face
    assert ferplus_majority(v).tolist() == [0, -1, 1, -1, -1]


def test_ferplus_alignment_checks(tmp_path, small_csv):
    path, _, _ = small_csv
    votes = tmp_path / "votes.csv"
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    rows = [f"{'Training' if i < 56 else 'PublicTest'},fer{i}.png,8,2,0,0,0,0,0,0,0,0" for i in range(70)]
    votes.write_text(header + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(DatasetError, match="69 rows.*70.*row-aligned"):
        load_ferplus(path, votes)
    rows[3] = rows[3].replace("Training", "PublicTest")
    votes.write_text(header + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match="row 4: Usage 'PublicTest'.*not row-aligned"):
        load_ferplus(path, votes)
    rows[3] = rows[3].replace("PublicTest", "Training")
    rows[5] = "Training,,0,0,0,0,0,0,0,0,0,10"  # not a face
    votes.write_text(header + "\n".join(rows) + "\n")
    ds = load_ferplus(path, votes)
    assert len(ds) == 69 and set(ds.labels.tolist()) == {5}  # all neutral
    assert ds.soft_labels.shape == (69, 8) and np.allclose(ds.soft_labels.sum(1), 1)


def _write_tree(root, layout, rng, size=48):
    for rel, n in layout.items():
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 255, (size, size), dtype=np.uint8))


def test_folder_tree_with_splits_and_corrupt_files(tmp_path, rng):
    _write_tree(tmp_path, {"train/happy": 4, "train/neutral": 3, "train/fear": 2, "test/happy": 1,
                           "test/neutral": 1, "test/fear": 1}, rng)
    (tmp_path / "train/happy/broken.png").write_bytes(b"not a png")
    ds = load_folder(tmp_path)
    assert ds.class_names == ("fear", "happy", "neutral")
    assert ds.counts() == {"test": {"fear": 1, "happy": 1, "neutral": 1},
                           "train": {"fear": 2, "happy": 4, "neutral": 3}}
    assert len(ds.skipped) == 1 and "broken.png" in ds.skipped[0].where
    strict = load_folder(tmp_path, resize=True)
    assert strict.images.shape[1:] == (48, 48)


def test_folder_tree_without_splits_gets_stratified_70_15_15(tmp_path, rng):
    _write_tree(tmp_path, {"a": 20, "b": 20}, rng, size=64)
    ds = load_folder(tmp_path)
    assert set(ds.splits.tolist()) == {"all"} and ds.images.shape[1:] == (48, 48)
    sp = standard_splits(ds)
    assert [len(sp[k]) for k in ("train", "val", "test")] == [28, 6, 6]
    for part in sp.values():
        assert set(part.labels.tolist()) == {0, 1}


def test_folder_tree_wrong_size_is_skipped_when_not_resizing(tmp_path, rng):
    _write_tree(tmp_path, {"a": 2}, rng, size=48)
    d = tmp_path / "a"
    cv2.imwrite(str(d / "big.png"), np.zeros((60, 50), np.uint8))
    ds = load_folder(tmp_path, resize=False)
    assert len(ds) == 2 and ds.skipped[0].reason == "size 50x60, expected 48x48"


def test_folder_layout_errors(tmp_path, rng):
    with pytest.raises(DatasetError, match="not found"):
        load_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no sub-folders"):
        load_folder(tmp_path)
    _write_tree(tmp_path, {"train/a": 1, "other/a": 1}, rng)
    with pytest.raises(DatasetError, match="mixes split folders"):
        load_folder(tmp_path)
    deep = tmp_path / "deep"
    _write_tree(deep, {"x/y": 1}, rng)
    with pytest.raises(DatasetError, match="unknown folder layout"):
        load_folder(deep)
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "bad.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="no readable images.*1 skipped"):
        load_folder(empty)


def test_class_subset_rename_and_merge(small_csv):
    ds = load_fer2013_csv(small_csv[0])
    three = select_classes(ds, ["happy", "neutral", "fear"])
    assert three.class_names == ("happy", "neutral", "fear") and len(three) == 30
    assert set(three.labels.tolist()) == {0, 1, 2}
    merged = select_classes(ds, rename={"angry": "negative", "disgust": "negative", "sad": "negative"})
    assert merged.class_names[0] == "negative" and (merged.labels == 0).sum() == 30
    with pytest.raises(DatasetError, match="not in"):
        select_classes(ds, ["joy"])


def test_stratified_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(4), [100, 50, 10, 40])
    a = stratified_split(labels, [0.7, 0.15, 0.15], seed=3)
    b = stratified_split(labels, [0.7, 0.15, 0.15], seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert sum(len(p) for p in a) == 200 and len(set(np.concatenate(a).tolist())) == 200
    assert np.bincount(labels[a[1]]).tolist() == [15, 7, 1, 6]


def test_fer2013_splits_carve_val_from_training(small_csv):
    sp = standard_splits(load_fer2013_csv(small_csv[0]), val_fraction=0.25)
    assert len(sp["test"]) == 14 and len(sp["train"]) + len(sp["val"]) == 56
    assert all(s == "Training" for s in sp["val"].splits)


def test_load_dataset_dispatch_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "x.csv")
    p = tmp_path / "x.txt"
    p.write_text("hi")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(p)


# ---- real data in ../shared --------------------------------------------------------------

@pytest.mark.shared
def test_real_fer2013_counts(fer2013):
    assert len(fer2013) == 32298
    counts = fer2013.counts()
    assert sum(counts["Training"].values()) == 28709
    assert sum(counts["PublicTest"].values()) == 3589
    assert counts["Training"]["disgust"] == 436 and counts["Training"]["happy"] == 7215


@pytest.mark.shared
def test_real_ferplus_majority_counts():
    need_shared(FERPLUS_CSV)
    got = ferplus_label_counts(FER_CSV, FERPLUS_CSV, "Training")
    assert got == {"angry": 2100, "contempt": 119, "disgust": 119, "fear": 532, "happy": 7287,
                   "neutral": 8740, "sad": 3014, "surprise": 3149, "no_majority": 3501, "no_image": 148}


@pytest.mark.shared
def test_folder_tree_from_real_images(tmp_path, fer2013):
    """A Kaggle-style tree written from real FER2013 faces and a real photo reads back exactly."""
    need_shared(MEDIA)
    names = ["happy", "neutral", "fear"]
    written = {}
    for split, usage in (("train", "Training"), ("test", "PublicTest")):
        part = fer2013.split(usage)
        for c in names:
            idx = np.flatnonzero(part.labels == FER2013_CLASSES.index(c))[:5]
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in idx:
                cv2.imwrite(str(d / f"{part.ids[i]}.png"), part.images[i])
                written[(split, c, int(part.ids[i]))] = part.images[i]
    cv2.imwrite(str(tmp_path / "train" / "happy" / "photo.jpg"), cv2.imread(str(MEDIA / "obama-240p.jpg")))
    ds = load_folder(tmp_path, classes=names)
    assert ds.counts()["train"] == {"happy": 6, "neutral": 5, "fear": 5}
    for i, path in enumerate(ds.ids):
        if path.endswith(".png"):
            parts = path.split("/")
            key = (parts[-3], parts[-2], int(parts[-1][:-4]))
            np.testing.assert_array_equal(ds.images[i], written[key])


def test_write_folder_round_trips_through_load_folder(tmp_path, rng):
    from emoedge.data.datasets import FaceDataset, load_folder, write_folder

    n = 30
    imgs = rng.integers(0, 255, (n, 48, 48), dtype=np.uint8)
    ds = FaceDataset(images=imgs, labels=np.arange(n) % 3, class_names=("a", "b", "c"),
                     splits=np.array(["Training"] * 24 + ["PublicTest"] * 6), ids=np.arange(n), source="x")
    written = write_folder(ds, tmp_path / "t", {"train": 5})
    assert written == {"test": {"a": 2, "b": 2, "c": 2}, "train": {"a": 5, "b": 5, "c": 5}}
    back = load_folder(tmp_path / "t")
    assert back.class_names == ("a", "b", "c") and len(back) == 21
    test = back.split("test")
    order = np.argsort([int(Path(str(i)).stem) for i in test.ids])
    np.testing.assert_array_equal(test.images[order], imgs[24:])      # lossless PNG
    with pytest.raises(DatasetError, match="not empty"):
        write_folder(ds, tmp_path / "t")
