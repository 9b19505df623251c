import json

import pytest
from testdata import face_like, write_fer_csv

from emoedge.data.datasets import load_fer2013_csv
from emoedge.data.inspect import inspect, write_report


def test_blanks_duplicates_and_leaks_on_synthetic_records(tmp_path, rng):
    imgs, labels = face_like(rng, 30, 3)
    imgs[5] = 0                       # blank
    imgs[6] = 128                     # blank
    imgs[10] = imgs[11]               # duplicate inside Training, same label
    imgs[20] = imgs[1]                # duplicate across Training/PublicTest (a leak)
    labels = labels.copy()
    labels[20] = (labels[1] + 1) % 3  # ... with conflicting labels
    usages = ["Training"] * 18 + ["PublicTest"] * 12
    ds = load_fer2013_csv(write_fer_csv(tmp_path / "s.csv", imgs, labels, usages))
    rep = inspect(ds)
    assert rep.blank == ("6", "7")
    assert len(rep.duplicate_groups) == 2
    leak, = rep.cross_split_groups
    assert set(leak.ids) == {"2", "21"} and leak.conflicting_labels
    s = rep.summary()
    assert s["duplicate_items"] == 4 and s["cross_split_duplicate_groups"] == 1
    assert "cross-split duplicates (leaks): 1 groups, 2 items" in rep.text()
    out = write_report(ds, rep, tmp_path / "rep")
    assert json.loads((out / "inspect.json").read_text())["blank_images"] == 2
    assert (out / "class_distribution.png").stat().st_size > 1000 and (out / "samples.png").is_file()


@pytest.mark.shared
def test_real_fer2013_known_facts(fer2013):
    rep = inspect(fer2013)
    s = rep.summary()
    assert s["blank_images"] == 12
    assert 1000 <= s["duplicate_groups"] <= 2000
    assert s["cross_split_duplicate_groups"] >= 200  # hundreds of Training/PublicTest leaks
    assert s["counts"]["Training"]["disgust"] == 436
