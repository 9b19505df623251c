"""Device ensembles (edge/inference/ensemble.py): mean, vote and stacking over members of any format, the spec
file, the runtime's factory, and the comparison against members (emoedge/benchmarks/ensemble_bench.py)."""

import json

import numpy as np
import pytest

from emoedge.core.errors import ModelError
from emoedge.edge.inference.ensemble import combine, combine_mean, combine_vote, write_spec
from emoedge.edge.inference.loader import open_ensemble as EnsembleClassifier


def _p(rows):
    return np.asarray(rows, np.float32)


def test_mean_vote_and_stack_by_hand():
    a = _p([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    b = _p([[0.1, 0.8, 0.1], [0.1, 0.6, 0.3]])
    c = _p([[0.5, 0.4, 0.1], [0.4, 0.1, 0.5]])
    np.testing.assert_allclose(combine_mean([a, b, c]), (a + b + c) / 3, atol=1e-6)
    v = combine_vote([a, b, c])
    assert v.argmax(1).tolist() == [0, 1]                    # 2 of 3 votes each time
    np.testing.assert_allclose(v.sum(1), 1, atol=1e-6)
    assert v[0, 0] == pytest.approx(2 / 3, abs=1e-2)
    # a tie (one vote each for 0 and 1): the higher mean probability wins
    t = combine_vote([_p([[0.5, 0.45, 0.05]]), _p([[0.1, 0.9, 0.0]])])
    assert t.argmax(1).tolist() == [1]
    # stacking that trusts only the second member
    coef = np.hstack([np.zeros((3, 3)), 10 * np.eye(3)]).astype(np.float32)
    s = combine("stack", [a, b], {"coef": coef, "intercept": np.zeros(3)})
    assert s.argmax(1).tolist() == b.argmax(1).tolist()
    with pytest.raises(ModelError, match="stacking expects 6 inputs"):
        combine("stack", [a], {"coef": coef, "intercept": np.zeros(3)})
    with pytest.raises(ModelError, match="unknown ensemble method"):
        combine("median", [a, b])


@pytest.fixture(scope="module")
def hog_members(tmp_path_factory):
    """Two HOG+LBP models (different regularization) and their data: no TensorFlow needed."""
    from testdata import face_like, write_fer_csv

    from emoedge.data.datasets import load_fer2013_csv
    from emoedge.train.handcrafted import train_hoglbp

    d = tmp_path_factory.mktemp("ens")
    imgs, labels = face_like(np.random.default_rng(3), 280, 7)
    ds = load_fer2013_csv(write_fer_csv(d / "d.csv", imgs, labels, ["Training"] * 210 + ["PublicTest"] * 70))
    paths = []
    for i, c in enumerate((0.01, 1.0)):
        train_hoglbp(ds, d / f"r{i}", c=c)
        p = d / f"m{i}.hoglbp.npz"
        (d / f"r{i}" / "model.hoglbp.npz").rename(p)
        paths.append(p)
    return ds, paths, imgs


def test_spec_runs_through_the_runtime_factory(hog_members, tmp_path):
    from emoedge.edge.engines.handcrafted import HogLbpClassifier
    from emoedge.edge.inference.classify import FaceClassifier

    ds, paths, imgs = hog_members
    spec = write_spec(paths[0].parent / "e-mean.ensemble.json", paths, "mean", ds.class_names)
    assert json.loads(spec.read_text())["members"] == [p.name for p in paths]       # relative to the spec
    clf = FaceClassifier(spec)
    x = imgs[:4, :, :, None] / 255.0
    want = np.mean([HogLbpClassifier(p).predict(x) for p in paths], axis=0)
    np.testing.assert_allclose(clf.model.predict(x), want, atol=1e-6)
    assert clf.class_names == ds.class_names


def test_bad_specs_are_named(hog_members, tmp_path):
    ds, paths, _ = hog_members
    bad = tmp_path / "x.ensemble.json"
    bad.write_text(json.dumps({"method": "mean", "members": [str(paths[0])], "weights": [1]}))
    with pytest.raises(ModelError, match="unknown key.*weights"):
        EnsembleClassifier(bad)
    bad.write_text(json.dumps({"method": "mean", "members": ["nope.int8.tflite"]}))
    with pytest.raises(ModelError, match="member .*nope.int8.tflite not found"):
        EnsembleClassifier(bad)
    bad.write_text(json.dumps({"method": "stack", "members": [str(p) for p in paths]}))
    with pytest.raises(ModelError, match="needs its fitted 'stack' weights"):
        EnsembleClassifier(bad)
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="not JSON"):
        EnsembleClassifier(bad)
    with pytest.raises(ValueError, match="NAME.ensemble.json"):
        write_spec(tmp_path / "x.json", paths, "mean", ds.class_names)


def test_a_member_changed_after_the_spec_was_written_is_named(hog_members, tmp_path):
    import shutil

    ds, paths, _ = hog_members
    members = []
    for p in paths:
        members.append(tmp_path / p.name)
        shutil.copy(p, members[-1])
        if p.with_suffix(p.suffix + ".json").is_file():
            shutil.copy(p.with_suffix(p.suffix + ".json"), tmp_path / (p.name + ".json"))
    k2 = len(ds.class_names) * len(members)
    stack = {"coef": np.eye(len(ds.class_names), k2).tolist(), "intercept": [0.0] * len(ds.class_names)}
    mean = write_spec(tmp_path / "m.ensemble.json", members, "mean", ds.class_names)
    st = write_spec(tmp_path / "s.ensemble.json", members, "stack", ds.class_names, stack=stack)
    assert len(json.loads(st.read_text())["member_sha256"]) == len(members)
    EnsembleClassifier(st)                                  # unchanged: opens
    shutil.copy(paths[1], members[0])                       # "re-shipped" under the same name
    with pytest.raises(ModelError, match=f"member .*{members[0].name} has sha256 .*refit"):
        EnsembleClassifier(st)
    with pytest.warns(UserWarning, match="still combines it"):
        EnsembleClassifier(mean)


def test_ensembles_are_scored_against_their_members(hog_members, tmp_path):
    from emoedge.benchmarks.ensemble_bench import evaluate_ensembles

    ds, paths, imgs = hog_members
    res = evaluate_ensembles(paths, ds, "PublicTest", out_dir=tmp_path, name="hog", latency_runs=10)
    roles = [r["role"] for r in res["rows"]]
    assert roles == ["member", "member", "ensemble (mean)", "ensemble (vote)", "ensemble (stack)"]
    lat = [r["latency_ms_per_face"] for r in res["rows"]]
    assert lat[2] == pytest.approx(lat[0] + lat[1])
    best = max(r["accuracy"] for r in res["rows"][:2])
    for r in res["rows"][2:]:
        assert r["gain_over_best_member_pts"] == pytest.approx(100 * (r["accuracy"] - best))
    assert res["stack_fitted_on"].startswith("val (n=")
    for m in ("mean", "vote", "stack"):
        spec = tmp_path / f"hog-{m}.ensemble.json"
        clf = EnsembleClassifier(spec)
        assert clf.method == m and clf.predict(imgs[:2, :, :, None] / 255.0).shape == (2, 7)
    # the written stacking spec reproduces the reported accuracy
    from emoedge.evaluate import evaluate_model

    run = evaluate_model(tmp_path / "hog-stack.ensemble.json", ds, usage="PublicTest")
    assert run.evaluation.accuracy == pytest.approx(res["rows"][4]["accuracy"])
    assert "| `hog-stack` |" in (tmp_path / "ensembles.md").read_text()


def test_cli_device_ensembles(hog_members, tmp_path, capsys):
    from emoedge.cli import main

    ds, paths, _ = hog_members
    data = ds.source
    assert main(["ensemble", *map(str, paths), "--out", str(tmp_path / "o"), "--method", "mean,vote"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ensemble-mean.ensemble.json",
                                                                   "ensemble-vote.ensemble.json"]
    assert main(["ensemble", *map(str, paths), "--out", str(tmp_path / "r"), "--data", data, "--name", "h"]) == 0
    assert "| `h-vote` | ensemble (vote) |" in capsys.readouterr().out
    assert main(["ensemble", *map(str, paths), "--out", str(tmp_path / "s")]) == 2
    assert "stacking is fitted on the validation split" in capsys.readouterr().err
    assert main(["ensemble", *map(str, paths), "--out", str(tmp_path / "s.keras")]) == 2
    assert "Keras members only" in capsys.readouterr().err
