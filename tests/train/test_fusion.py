import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_fused_model_is_the_mean_of_members_and_survives_save_load_and_int8(tmp_path):
    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.keras.io import load_keras
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse, fuse_files

    a = zoo.build("small_cnn", 3, width=8)
    b = zoo.build("vgg_cbam", 3, widths=(8, 8, 8, 8))
    x = np.random.default_rng(0).random((6, 48, 48, 1)).astype(np.float32)
    members = [m.predict(v, verbose=0) for m in (a, b) for v in (x, x[:, :, ::-1])]
    fused = fuse([a, b], flip=True)
    np.testing.assert_allclose(fused.predict(x, verbose=0), np.mean(members, axis=0), atol=1e-6)
    np.testing.assert_allclose(fuse([a, b]).predict(x, verbose=0), np.mean(members[::2], axis=0), atol=1e-6)
    a.save(tmp_path / "a.keras")
    b.save(tmp_path / "b.keras")
    path = fuse_files([tmp_path / "a.keras", tmp_path / "b.keras"], tmp_path / "e.keras", flip=True)
    again = load_keras(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), np.mean(members, axis=0), atol=1e-6)
    (tmp_path / "e.tflite").write_bytes(convert_keras(again, "float32"))
    np.testing.assert_allclose(TFLiteClassifier(tmp_path / "e.tflite").predict(x), np.mean(members, axis=0),
                               atol=1e-5)
    with pytest.raises(ValueError, match="members disagree"):
        fuse([a, zoo.build("small_cnn", 4, width=8)])


def test_zoom_views_are_centre_crops_scaled_back_and_convert(tmp_path):
    """--zoom adds, per view, the centre crop resized back: the mean over face, mirror and both crops,
    the same after saving and in float TFLite."""
    import cv2

    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.keras.io import load_keras
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse_files

    a = zoo.build("vgg", 7, widths=(8, 16), dense=16)
    a.save(tmp_path / "a.keras")
    x = np.random.default_rng(1).random((5, 48, 48, 1)).astype(np.float32)
    zoomed = np.stack([cv2.resize(im[2:46, 2:46, 0], (48, 48), interpolation=cv2.INTER_LINEAR) for im in x])[..., None]
    views = (x, x[:, :, ::-1], zoomed, zoomed[:, :, ::-1])
    want = np.mean([a.predict(v, verbose=0) for v in views], axis=0)
    fused = load_keras(fuse_files([tmp_path / "a.keras"], tmp_path / "z.keras", flip=True, zoom_px=2))
    np.testing.assert_allclose(fused.predict(x, verbose=0), want, atol=1e-5)
    plain = a.predict(x, verbose=0)
    assert np.abs(want - plain).max() > 1e-4  # the views change the answer
    (tmp_path / "z.tflite").write_bytes(convert_keras(fused, "float32"))
    np.testing.assert_allclose(TFLiteClassifier(tmp_path / "z.tflite").predict(x), want, atol=1e-5)
    with pytest.raises(ValueError, match="leaves nothing"):
        fuse_files([tmp_path / "a.keras"], tmp_path / "bad.keras", zoom_px=24)


def test_members_and_ensemble_compared_on_the_same_split(tmp_path):
    from testdata import face_like, write_fer_csv

    from emoedge.benchmarks.ensemble_bench import compare_members
    from emoedge.data.datasets import load_fer2013_csv
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse_files

    imgs, labels = face_like(np.random.default_rng(0), 70, 7)
    ds = load_fer2013_csv(write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 70))
    paths = []
    for i in range(2):
        p = tmp_path / f"m{i}.keras"
        zoo.build("small_cnn", 7, width=8).save(p)
        paths.append(p)
    fused = fuse_files(paths, tmp_path / "e.keras", flip=True)
    rows = compare_members(paths, fused, ds, runs=20)
    assert [r["role"] for r in rows] == ["member", "member", "ensemble"]
    assert all(0 <= r["accuracy"] <= 1 and r["latency_ms_per_face"] > 0 for r in rows)
    # no ensemble-vs-member timing here: a loaded machine reorders them (timings belong in benchmarks)


def test_fused_run_record_sums_the_members_and_the_card_names_them(tmp_path):
    import json

    from emoedge.convert.modelcard import render_model_card
    from emoedge.core.preprocess import PREPROCESSING
    from emoedge.train.fusion import fused_run_record

    pc = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 5}
    ev = {"n": 10, "accuracy": 0.7, "macro_f1": 0.6, "per_class": {"a": pc, "b": pc},
          "confusion_matrix": [[3, 2], [2, 3]], "class_names": ["a", "b"]}
    cfg = {"arch": "vgg", "arch_kwargs": {}, "epochs": 3, "batch_size": 8, "learning_rate": 0.001, "schedule": "cosine",
           "warmup_epochs": 1, "label_smoothing": 0.0, "class_balance": "none", "augment": {"flip": True},
           "seed": 1, "val_fraction": 0.1}
    paths = []
    for i, (secs, acc) in enumerate(((100.0, 0.61), (50.0, 0.64))):
        d = tmp_path / f"run{i}"
        d.mkdir()
        run = {"config": {**cfg, "init_from": str(tmp_path / "run0/model.keras") if i else None},
               "class_names": ["a", "b"], "preprocessing": PREPROCESSING, "params": 10, "best_epoch": 2,
               "epochs_run": 3, "train_seconds": secs, "versions": {"keras": "3"},
               "data": {"fingerprint_sha256": "f" * 64, "train_items": 9, "val_items": 1},
               "val": {**ev, "accuracy": acc}, "test": {**ev, "accuracy": acc - 0.01}}
        (d / "run.json").write_text(json.dumps(run))
        paths.append(d / "model.keras")
    rec = fused_run_record(paths, flip=True, params=20)
    assert rec["train_seconds"] == 150.0 and rec["epochs_run"] == 6 and rec["params"] == 20
    assert "each on the face and on its mirror image" in rec["fusion"] and "run1/model.keras" in rec["fusion"]
    alone = fused_run_record(paths[1:], flip=True, params=10)     # run1 continued run0: both runs count
    assert alone["train_seconds"] == 150.0 and alone["epochs_run"] == 6 and len(alone["runs_included"]) == 2
    card = render_model_card("default", "test", rec, {**ev, "model": "default.tflite"}, {}, "cmd")
    assert "`run0` 61.00% / 60.00% after 3 epochs" in card and "(continued from the previous)" in card
    assert "Fusion: mean of the class probabilities of 2 member(s)" in card
    # the card of a model distilled from the fusion of run1 (which continued run0) lists every command
    from emoedge.convert.modelcard import lineage

    for i in (0, 1):
        r = json.loads((tmp_path / f"run{i}/run.json").read_text())
        (tmp_path / f"run{i}/run.json").write_text(json.dumps({**r, "command": f"emoedge train run{i}"}))
    (tmp_path / "fused").mkdir()
    (tmp_path / "fused/run.json").write_text(json.dumps({**fused_run_record(paths[1:], True, 10),
                                                         "command": "emoedge ensemble run1 --flip"}))
    (tmp_path / "student").mkdir()
    student = {**json.loads((tmp_path / "run1/run.json").read_text()), "command": "emoedge train student",
               "train_seconds": 60.0}
    student["config"] = {**student["config"], "init_from": str(tmp_path / "run1/model.keras"),
                         "soft_targets_from": str(tmp_path / "fused/model.keras"), "soft_weight": 0.7,
                         "soft_temperature": 2.0}
    (tmp_path / "student/run.json").write_text(json.dumps(student))
    steps = lineage(tmp_path / "student")
    assert [st["command"] for st in steps] == ["emoedge train run0", "emoedge train run1",
                                               "emoedge ensemble run1 --flip", "emoedge train student"]
    assert [st["seconds"] for st in steps] == [100.0, 50.0, 0.0, 60.0]
    card = render_model_card("fast", "test", student, {**ev, "model": "fast.tflite"}, {}, "emoedge models ship",
                             steps=steps)
    assert "4 min of training, 9 epochs in all" in card and "  5. `emoedge models ship`" in card
    assert "  3. `emoedge ensemble run1 --flip` (a fusion: no training of its own)" in card
    assert "Distilled from `fused/model.keras`" in card
    bad = json.loads((tmp_path / "run1/run.json").read_text())
    bad["data"]["fingerprint_sha256"] = "0" * 64
    (tmp_path / "run1/run.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="different data or classes"):
        fused_run_record(paths, flip=False, params=20)
    assert fused_run_record([tmp_path / "nowhere/model.keras"], flip=False, params=1) is None


def test_weight_average_means_the_weights_and_re_estimates_batchnorm(tmp_path):
    """Snapshots of one architecture average into one network; BatchNorm's moving statistics become
    the averaged network's own (with dropout off), not the members' averaged ones."""
    import keras

    from emoedge.train import zoo
    from emoedge.train.fusion import average_weights

    keras.utils.set_random_seed(3)
    a = zoo.build("vgg", 3, widths=[4, 8], dense=8)
    b = zoo.build("vgg", 3, widths=[4, 8], dense=8)
    rng = np.random.default_rng(0)
    x = rng.random((64, 48, 48, 1), dtype=np.float32)
    plain = average_weights([a, b])
    np.testing.assert_allclose(plain.get_layer("s2b_conv").get_weights()[0],
                               (a.get_layer("s2b_conv").get_weights()[0]
                                + b.get_layer("s2b_conv").get_weights()[0]) / 2,
                               rtol=1e-6)
    avg = average_weights([a, b], x, batch_size=16)
    # the first BN's moving mean is now the mean of the averaged first conv's outputs over the images
    conv = keras.Model(avg.input, avg.get_layer("s1a_conv").output)
    want = np.asarray(conv(x)).mean(axis=(0, 1, 2))
    got = avg.get_layer("s1a_bn").moving_mean.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, plain.get_layer("s1a_bn").moving_mean.numpy())
    assert avg.get_layer("fc_drop").rate == b.get_layer("fc_drop").rate > 0      # restored after the pass
    assert avg.get_layer("s1a_bn").momentum == a.get_layer("s1a_bn").momentum
    other = zoo.build("vgg", 3, widths=[4, 16], dense=8)
    with pytest.raises(ValueError, match="differ in architecture"):
        average_weights([a, other])



def test_cli_weight_average_needs_data_and_records_what_it_did(tmp_path, capsys):
    import json

    from testdata import face_like, write_fer_csv

    from emoedge.cli import main
    from emoedge.data.datasets import FER2013_CLASSES
    from emoedge.train import zoo

    rng = np.random.default_rng(1)
    imgs, labels = face_like(rng, 70, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 50 + ["PublicTest"] * 20)
    ev = {"n": 5, "accuracy": 0.5, "macro_f1": 0.5, "per_class": {}, "confusion_matrix": [], "class_names": []}
    paths = []
    for i in range(2):
        d = tmp_path / f"snap{i}"
        d.mkdir()
        zoo.build("vgg", 7, widths=[4, 8], dense=8).save(d / "model.keras")
        (d / "run.json").write_text(json.dumps({
            "config": {"arch": "vgg", "seed": 7 + i, "split_seed": 1, "val_fraction": 0.2, "init_from": None},
            "class_names": list(FER2013_CLASSES), "params": 1, "epochs_run": 2, "train_seconds": 10.0,
            "data": {"fingerprint_sha256": "f" * 64, "train_items": 40, "val_items": 10}, "val": ev, "test": ev}))
        paths.append(str(d / "model.keras"))
    out = tmp_path / "swa" / "model.keras"
    assert main(["ensemble", *paths, "--average", "--flip", "--out", str(out)]) == 2
    assert "give --data" in capsys.readouterr().err and not out.exists()
    assert main(["ensemble", *paths, "--average", "--flip", "--data", str(csv), "--out", str(out)]) == 0
    rec = json.loads((out.parent / "run.json").read_text())
    import re

    assert re.match(r"one network with the mean weights of 2 member\(s\), on the face and on its mirror image; "
                    r"BatchNorm statistics re-estimated on the 4\d training faces: `snap0/model.keras`", rec["fusion"])
    assert [m["model"] for m in rec["members"]] == paths and rec["train_seconds"] == 20.0


def test_weighted_fusion_is_the_weighted_mean_of_members(tmp_path):
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse

    a = zoo.build("small_cnn", 7, width=8)
    b = zoo.build("small_cnn", 7, width=8)
    x = np.random.default_rng(2).random((5, 48, 48, 1), dtype=np.float32)
    pa, pb = np.asarray(a.predict(x, verbose=0)), np.asarray(b.predict(x, verbose=0))
    got = np.asarray(fuse([a, b], weights=[1.0, 0.5]).predict(x, verbose=0))
    np.testing.assert_allclose(got, (pa + 0.5 * pb) / 1.5, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="one positive weight per member"):
        fuse([a, b], weights=[1.0])


def test_logit_fusion_runs_each_member_once_and_is_the_softmax_of_the_weighted_mean_score(tmp_path):
    import keras

    from emoedge.keras.io import load_keras
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse, logits_of

    a = zoo.build("small_cnn", 7, width=8)
    b = zoo.build("small_cnn", 7, width=8)
    x = np.random.default_rng(3).random((6, 48, 48, 1), dtype=np.float32)
    la, lb = (np.asarray(logits_of(m).predict(np.concatenate([x, x[:, :, ::-1]]), verbose=0)) for m in (a, b))
    la, lb = (la[:6] + la[6:]) / 2, (lb[:6] + lb[6:]) / 2          # mean over the face and its mirror
    z = (la + 0.5 * lb) / 1.5
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    fused = fuse([a, b], flip=True, weights=[1.0, 0.5], mean="logits")
    fused.save(tmp_path / "l.keras")
    fused = load_keras(tmp_path / "l.keras")
    np.testing.assert_allclose(fused.predict(x, verbose=0), want, atol=1e-5)
    # a batch gives each face what it gets alone (the views are stacked along the batch axis)
    np.testing.assert_allclose(fused.predict(x[2:3], verbose=0)[0], want[2], atol=1e-5)
    # one call per member whatever the number of views: its weights appear once in a converted graph
    inner = [layer for layer in fused.layers if isinstance(layer, keras.Model)]
    assert len(inner) == 2 and all(len(m._inbound_nodes) == 1 for m in inner)
    with pytest.raises(ValueError, match="not a softmax"):
        logits_of(keras.Model(a.input, a.layers[-2].output))
    with pytest.raises(ValueError, match="'probs' or 'logits'"):
        fuse([a], mean="median")


def test_fused_views_store_each_weight_once_in_int8(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse

    a = zoo.build("small_cnn", 7, width=8)
    b = zoo.build("small_cnn", 7, width=8)
    cal = np.random.default_rng(4).random((20, 48, 48, 1), dtype=np.float32)
    path = tmp_path / "f.tflite"
    path.write_bytes(convert_keras(fuse([a, b], flip=True, zoom_px=2, weights=[1, 0.5]), "int8", cal))
    biggest = max((w for w in a.weights if len(w.shape) > 1), key=lambda w: int(np.prod(w.shape)))
    n = int(np.prod(biggest.shape))
    sizes = [int(np.prod(d["shape"])) for d in Interpreter(model_path=str(path)).get_tensor_details()]
    assert sizes.count(n) == 2, f"{sizes.count(n)} tensors of {n} values: weights copied per view"
    clf = TFLiteClassifier(path)
    assert clf.num_classes == 7
