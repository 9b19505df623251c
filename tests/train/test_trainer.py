"""Training and evaluation on small data: a tiny run on a few hundred real faces that
``evaluate`` then reads (Keras and TFLite), fine-tuning onto another class set, bad models."""

import json

import numpy as np
import pytest
from testdata import face_like, write_fer_csv

from emoedge.core.errors import ModelError
from emoedge.data.datasets import FER2013_CLASSES, load_fer2013_csv, select_classes

pytestmark = pytest.mark.slow

TINY = {"arch": "small_cnn", "arch_kwargs": {"width": 8}, "epochs": 2, "batch_size": 32,
        "early_stopping_patience": 0, "val_fraction": 0.2}


@pytest.fixture(scope="module")
def real_subset(fer2013, tmp_path_factory):
    """~400 real FER2013 faces (Training) + 140 PublicTest, written as a small CSV."""
    rng = np.random.default_rng(0)
    tr = fer2013.split("Training")
    te = fer2013.split("PublicTest")
    ti = rng.choice(len(tr), 420, replace=False)
    si = rng.choice(len(te), 140, replace=False)
    path = tmp_path_factory.mktemp("real") / "subset.csv"
    write_fer_csv(path, np.concatenate([tr.images[ti], te.images[si]]),
                  np.concatenate([tr.labels[ti], te.labels[si]]), ["Training"] * 420 + ["PublicTest"] * 140)
    return path


@pytest.fixture(scope="module")
def trained(real_subset, tmp_path_factory):
    from emoedge.train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig.from_dict(TINY), load_fer2013_csv(real_subset), out, verbose=0)
    return result


def test_training_run_records_everything(trained):
    out = trained.out_dir
    for name in ("model.keras", "run.json", "history.json", "history.csv", "curves.png"):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["arch"] == "small_cnn"
    assert run["data"]["train_items"] + run["data"]["val_items"] == 420
    assert run["data"]["test_items"] == 140
    assert len(run["data"]["fingerprint_sha256"]) == 64
    assert {"tensorflow", "keras", "numpy", "python"} <= set(run["versions"])
    assert run["test"]["n"] == 140 and 0 <= run["test"]["accuracy"] <= 1
    assert trained.epochs_run == 2 and 1 <= trained.best_epoch <= 2


def test_evaluate_reads_the_trained_model_keras_and_tflite(trained, real_subset, tmp_path):
    from emoedge.convert.tflite import convert_file
    from emoedge.evaluate import evaluate_model, write_evaluation

    ds = load_fer2013_csv(real_subset)
    k = evaluate_model(trained.model_path, ds, usage="PublicTest")
    assert k.evaluation.n == 140
    assert k.evaluation.accuracy == pytest.approx(trained.test.accuracy, abs=1e-9)
    tfl = convert_file(trained.model_path, tmp_path / "m.tflite", "float32", FER2013_CLASSES)
    t = evaluate_model(tfl, ds, usage="PublicTest")
    np.testing.assert_allclose(t.probs, k.probs, atol=1e-4)
    d = write_evaluation(t, tmp_path / "eval.json")
    assert {"n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names"} <= set(d)
    assert (tmp_path / "eval.confusion.png").stat().st_size > 1000


def test_model_output_size_must_match_class_list(trained, real_subset):
    from emoedge.evaluate import evaluate_model

    three = select_classes(load_fer2013_csv(real_subset), ["happy", "neutral", "fear"])
    with pytest.raises(ModelError, match="outputs 7 classes but the class list has 3"):
        evaluate_model(trained.model_path, three, class_names=three.class_names)


def test_bad_model_files(tmp_path, real_subset):
    from emoedge.evaluate import evaluate_model

    ds = load_fer2013_csv(real_subset)
    with pytest.raises(ModelError, match="not found"):
        evaluate_model(tmp_path / "none.tflite", ds)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="bad.tflite: not a loadable TFLite model"):
        evaluate_model(bad, ds)
    badk = tmp_path / "bad.keras"
    badk.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="bad.keras: not a loadable Keras model"):
        evaluate_model(badk, ds)
    with pytest.raises(ModelError, match="unknown model format"):
        evaluate_model(tmp_path / "x.onnx2", ds)


def test_fine_tune_onto_a_new_class_set(trained, tmp_path, rng):
    """A 7-class FER2013 model fine-tuned onto a synthetic 3-class folder-free dataset."""
    from emoedge.train.trainer import TrainConfig, train

    imgs, labels = face_like(rng, 90, 3)
    path = write_fer_csv(tmp_path / "three.csv", imgs, labels, ["Training"] * 90)
    ds = select_classes(load_fer2013_csv(path), ["angry", "disgust", "fear"])
    cfg = TrainConfig.from_dict({**TINY, "init_from": str(trained.model_path), "epochs": 1})
    res = train(cfg, ds, tmp_path / "ft", verbose=0)
    import keras

    m = keras.models.load_model(res.model_path, compile=False)
    assert m.output_shape[-1] == 3


def test_fine_tuned_in_mixed_precision_saves_float32_and_converts_to_int8(trained, tmp_path, rng, capsys):
    """A new head added under the bfloat16 policy used to stay bfloat16, and int8 conversion failed
    ('tf.MatMul' op is neither a custom op nor a flex op)."""
    from emoedge.convert.tflite import convert_file
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.keras.io import load_keras
    from emoedge.train.trainer import TrainConfig, train

    imgs, labels = face_like(rng, 90, 3)
    path = write_fer_csv(tmp_path / "three.csv", imgs, labels, ["Training"] * 90)
    ds = select_classes(load_fer2013_csv(path), ["angry", "disgust", "fear"])
    cfg = TrainConfig.from_dict({**TINY, "init_from": str(trained.model_path), "epochs": 1, "mixed_precision": True,
                                 "onednn": False})
    res = train(cfg, ds, tmp_path / "ft", verbose=0)
    # the loaded float32 model trains in bfloat16 (rebuilt from the zoo), and is saved in float32
    assert "rebuilt as small_cnn under mixed_bfloat16" in capsys.readouterr().err
    m = load_keras(res.model_path)
    assert {layer.dtype_policy.name for layer in m.layers} == {"float32"}
    out = convert_file(res.model_path, tmp_path / "ft.int8.tflite", "int8", ds.class_names,
                       np.asarray(imgs[:20, :, :, None] / 255.0, np.float32))
    clf = TFLiteClassifier(out)
    assert clf.predict(np.asarray(imgs[:4, :, :, None] / 255.0, np.float32)).shape == (4, 3)


def test_small_data_lowers_batchnorm_momentum_large_data_keeps_it():
    from emoedge.train import zoo
    from emoedge.train.steps import fit_batchnorm_to_data

    m = zoo.build("small_cnn", 3, width=8)
    assert fit_batchnorm_to_data(m, 200) is None
    assert fit_batchnorm_to_data(m, 13) == pytest.approx(0.769)
    import keras

    bns = [la for la in m._flatten_layers(include_self=False) if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and all(b.momentum == pytest.approx(0.769) for b in bns)


def test_constant_classifier_is_named():
    from emoedge.metrics import evaluate_predictions
    from emoedge.train.steps import constant_classifier

    y = np.array([0] * 30 + [1] * 30 + [2] * 30)
    flat = evaluate_predictions(y, np.zeros_like(y), ("happy", "neutral", "fear"))
    msg = constant_classifier(flat)
    assert "predicts 'happy' for 100%" in msg and "accuracy 33.3%" in msg and "init_from" in msg
    assert constant_classifier(evaluate_predictions(y, y, ("happy", "neutral", "fear"))) is None


def test_a_failed_run_leaves_no_empty_folder_and_marks_a_used_one(tmp_path):
    from emoedge.train.trainer import TrainConfig, train

    ds = select_classes(load_fer2013_csv(write_fer_csv(tmp_path / "d.csv", *face_like(np.random.default_rng(0), 30, 3),
                                                       ["Training"] * 30)), ["angry", "disgust", "fear"])
    bad = TrainConfig.from_dict({**TINY, "init_from": str(tmp_path / "missing.keras")})
    with pytest.raises(ModelError, match="not found"):
        train(bad, ds, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine\n")
    with pytest.raises(ModelError):
        train(bad, ds, used)
    assert "ModelError" in (used / "FAILED").read_text() and (used / "notes.txt").is_file()


def test_augmenter_changes_images_but_keeps_range():
    from emoedge.train.augment import Augment, make_augmenter

    x = np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32)
    y = np.asarray(make_augmenter(Augment(), seed=3)(x))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not np.allclose(x, y)
    none = Augment(flip=False, rotation_deg=0, zoom=0, shift=0, brightness=0, contrast=0, blur_prob=0, erase_prob=0)
    np.testing.assert_allclose(np.asarray(make_augmenter(none, 0)(x)), x)


def test_config_rejects_unknown_keys():
    from emoedge.train.trainer import TrainConfig

    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epochz'\]"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match=r"unknown augment option\(s\) \['flop'\]"):
        TrainConfig.from_dict({"augment": {"flop": True}})


def test_zoo_builds_every_architecture_for_any_class_count():
    from emoedge.train import zoo

    for arch in zoo.ZOO:
        m = zoo.build(arch, 3)
        assert m.input_shape == (None, 48, 48, 1) and m.output_shape == (None, 3)
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.build("resnet", 7)


def test_ship_writes_model_files_manifests_and_a_generated_card(trained, real_subset, tmp_path):
    from emoedge.convert.ship import ship
    from emoedge.edge.inference.classify import FaceClassifier

    ds = load_fer2013_csv(real_subset)
    out = ship(trained.out_dir, "fast", ds, command="emoedge train ...", out_dir=tmp_path,
               report_dir=tmp_path.parent / "rep")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fast.eval.json", "fast.keras", "fast.keras.json", "fast.md", "fast.run.json",
                     "fast.tflite", "fast.tflite.json"]
    manifest = json.loads((tmp_path / "fast.tflite.json").read_text())
    assert manifest["class_names"] == list(FER2013_CLASSES)
    assert manifest["input"]["dtype"] == "float32" and manifest["preprocessing"]["input_size"] == 48
    ev = json.loads((tmp_path / "fast.eval.json").read_text())
    card = out["card"].read_text()
    assert f"{ev['accuracy']:.2%}" in card and "emoedge train ..." in card and "| disgust |" in card
    assert "Temperature scaling fitted on the validation split" in card
    assert manifest["temperature"] > 0 and set(manifest["reference_distribution"]) == set(FER2013_CLASSES)
    clf = FaceClassifier(out["tflite"])
    assert clf.class_names == FER2013_CLASSES
    from emoedge.convert.ship import move_float_masters

    moved = move_float_masters(tmp_path, "fast", tmp_path.parent / "float")
    assert sorted(p.name for p in moved) == ["fast.keras", "fast.keras.json", "fast.tflite", "fast.tflite.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.eval.json", "fast.md", "fast.run.json"]
    assert "## Float masters" in (tmp_path / "fast.md").read_text()


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, rng, monkeypatch):
    from emoedge.train import progress
    from emoedge.train.trainer import TrainConfig, train

    imgs, labels = face_like(rng, 120, 3)
    ds = select_classes(load_fer2013_csv(write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 120)),
                        ["angry", "disgust", "fear"])
    cfg = TrainConfig.from_dict({**TINY, "epochs": 3})
    original = progress.EpochProgress.on_epoch_end

    def power_cut(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(progress.EpochProgress, "on_epoch_end", power_cut)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, ds, tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "backup").is_dir()
    monkeypatch.setattr(progress.EpochProgress, "on_epoch_end", original)
    res = train(cfg, ds, tmp_path / "run", verbose=0)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert res.epochs_run == 3 and len(hist["loss"]) == 3
    assert not (tmp_path / "run" / "backup").exists()


def test_soften_keeps_the_ranking_and_spreads_the_mass():
    from emoedge.train.targets import soften

    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9]], np.float32)
    np.testing.assert_allclose(soften(p, 1.0), p, atol=1e-6)
    s = soften(p, 3.0)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, atol=1e-6)
    assert (s.argmax(1) == p.argmax(1)).all()
    assert (s.max(1) < p.max(1)).all()
    with pytest.raises(ValueError, match="soft_temperature"):
        soften(p, 0.0)


def test_continuing_a_run_starts_from_its_weights(trained, real_subset, tmp_path):
    """init_from with the same classes rebuilds the architecture and copies the weights."""
    import keras

    from emoedge.train.trainer import TrainConfig, train

    src = keras.models.load_model(trained.model_path, compile=False)
    cfg = TrainConfig.from_dict({**TINY, "init_from": str(trained.model_path), "epochs": 1,
                                 "learning_rate": 1e-9, "warmup_epochs": 0})
    res = train(cfg, load_fer2013_csv(real_subset), tmp_path / "cont", verbose=0)
    got = keras.models.load_model(res.model_path, compile=False)
    for name in ("b1_conv", "b3_conv"):
        np.testing.assert_allclose(got.get_layer(name).get_weights()[0], src.get_layer(name).get_weights()[0],
                                   atol=1e-5)


def test_a_fine_tune_never_returns_worse_than_its_start(trained, real_subset, tmp_path, capsys):
    """The starting model of a fine-tune is scored first: an epoch must beat it on validation; a run
    whose epochs only make it worse (here a learning rate that wrecks it) returns the start, and says so;
    ``epochs: 0`` keeps the start as it is (how the shipped one-pass model is made)."""
    import keras

    from emoedge.train.trainer import TrainConfig, train

    src = keras.models.load_model(trained.model_path, compile=False)
    ds = load_fer2013_csv(real_subset)
    res = train(TrainConfig.from_dict({**TINY, "init_from": str(trained.model_path), "epochs": 1,
                                       "learning_rate": 50.0, "warmup_epochs": 0}), ds, tmp_path / "wreck", verbose=0)
    run = json.loads((res.out_dir / "run.json").read_text())
    assert res.best_epoch == 0 and run["best_epoch"] == 0 and run["epochs_run"] == 1
    assert run["start_val_accuracy"] == pytest.approx(trained.val.accuracy, abs=1e-6)
    assert json.loads((res.out_dir / "history.json").read_text())["val_accuracy"][0] < run["start_val_accuracy"]
    assert "no epoch beat its validation accuracy" in capsys.readouterr().err
    got = keras.models.load_model(res.model_path, compile=False)
    for a, b in zip(got.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)

    kept = train(TrainConfig.from_dict({**TINY, "init_from": str(trained.model_path), "epochs": 0}), ds,
                 tmp_path / "kept", verbose=0)
    assert kept.best_epoch == 0 and kept.epochs_run == 0 and kept.val.accuracy == pytest.approx(trained.val.accuracy)
    for a, b in zip(keras.models.load_model(kept.model_path, compile=False).get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="epochs: 0 keeps the model init_from names"):
        TrainConfig.from_dict({**TINY, "epochs": 0})
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        TrainConfig.from_dict({**TINY, "epochs": -1})


def test_distillation_from_a_teacher(trained, real_subset, tmp_path, rng):
    from emoedge.train.trainer import TrainConfig, train

    cfg = TrainConfig.from_dict({**TINY, "epochs": 1, "soft_targets_from": str(trained.model_path),
                                 "soft_weight": 0.5, "soft_temperature": 2.0})
    res = train(cfg, load_fer2013_csv(real_subset), tmp_path / "kd", verbose=0)
    run = json.loads((res.out_dir / "run.json").read_text())
    assert run["config"]["soft_targets_from"] == str(trained.model_path)
    # a teacher with another class set is refused by name
    imgs, labels = face_like(rng, 60, 3)
    ds = select_classes(load_fer2013_csv(write_fer_csv(tmp_path / "t.csv", imgs, labels, ["Training"] * 60)),
                        ["angry", "disgust", "fear"])
    with pytest.raises(ValueError, match="teacher has 7 classes, the data 3"):
        train(cfg, ds, tmp_path / "kd3", verbose=0)
    with pytest.raises(ValueError, match="soft_weight"):
        train(TrainConfig.from_dict({**TINY, "soft_targets_from": str(trained.model_path), "soft_weight": 2}),
              ds, tmp_path / "kd4", verbose=0)


def test_a_smaller_relative_is_seeded_by_layer_name():
    """A VGG with a one-conv stem keeps the full VGG's layer names, so a trained full model seeds it:
    every layer with the same name and shapes is copied, the dropped one is simply absent."""
    from emoedge.train import zoo
    from emoedge.train.heads import copy_layers_by_name

    full = zoo.build("vgg", 7, widths=[8, 16, 32], dense=16)
    pruned = zoo.build("vgg", 7, stem=8, widths=[16, 32], dense=16)
    names = {layer.name for layer in pruned.layers if layer.weights}
    assert "s1a_conv" in names and "s1b_conv" not in names and "s3b_conv" in names
    copied, fresh = copy_layers_by_name(full, pruned)
    assert fresh == [] and "s2a_conv" in copied and "fc" in copied
    np.testing.assert_array_equal(pruned.get_layer("s3b_conv").get_weights()[0],
                                  full.get_layer("s3b_conv").get_weights()[0])
    # a different width at one stage: that stage's first conv, and what follows it, start fresh
    other = zoo.build("vgg", 7, stem=8, widths=[24, 32], dense=16)
    copied, fresh = copy_layers_by_name(full, other)
    assert "s1a_conv" in copied and "s2a_conv" in fresh and "s3a_conv" in fresh and "s3b_conv" in copied


def test_split_seed_keeps_the_validation_split_of_another_seed(trained, real_subset, tmp_path):
    """A second ensemble member trains with its own seed but split_seed of the first run, so both
    hold out the same validation faces (the train-set fingerprint is equal); without it they differ."""
    from emoedge.train.trainer import TrainConfig, train

    first = json.loads((trained.out_dir / "run.json").read_text())["data"]["train_fingerprint_sha256"]
    ds = load_fer2013_csv(real_subset)
    same = train(TrainConfig.from_dict({**TINY, "epochs": 1, "seed": 5, "split_seed": 1}), ds, tmp_path / "a",
                 verbose=0)
    other = train(TrainConfig.from_dict({**TINY, "epochs": 1, "seed": 5}), ds, tmp_path / "b", verbose=0)
    fp = [json.loads((r.out_dir / "run.json").read_text())["data"]["train_fingerprint_sha256"] for r in (same, other)]
    assert fp[0] == first and fp[1] != first


@pytest.mark.parametrize("name", ["fast", "onepass", "default"])
def test_float_master_rebuilt_from_the_int8_file_agrees_with_it(name):
    """The float master by name: the shipped int8 file's weights in the recorded architecture."""
    from emoedge.core.preprocess import preprocess_faces
    from emoedge.core.shipped import resolve_model
    from emoedge.edge.engines.interpreter import TFLiteClassifier
    from emoedge.edge.faces.detect import HaarDetector
    from emoedge.edge.runtime.demo import demo_image
    from emoedge.train.masters import rebuild_master, weights_sha256

    img = demo_image()
    box = HaarDetector().detect(img)[0].box
    x0, y0, w, _ = box
    shifted = [(x0 + dx, y0 + dy, w + dw, w + dw) for dx in (-12, 0, 12) for dy in (-12, 0, 12) for dw in (-20, 0, 20)]
    x = np.concatenate([preprocess_faces(img, shifted), preprocess_faces(img[:, ::-1], shifted)])
    m = rebuild_master(name)
    pk = np.asarray(m.predict(x, verbose=0))
    pt = TFLiteClassifier(resolve_model(name)).predict(x)
    assert (pk.argmax(1) == pt.argmax(1)).mean() >= 0.9
    assert np.abs(pk - pt).max() < 0.2
    assert weights_sha256(m) == weights_sha256(rebuild_master(name))   # the same every time


def test_init_from_a_shipped_name_fine_tunes_its_master(tmp_path, rng, capsys):
    from emoedge.train.trainer import TrainConfig, train

    imgs, labels = face_like(rng, 60, 3)
    ds = select_classes(load_fer2013_csv(write_fer_csv(tmp_path / "t.csv", imgs, labels, ["Training"] * 60)),
                        ["angry", "disgust", "fear"])
    res = train(TrainConfig.from_dict({**TINY, "init_from": "fast", "epochs": 1}), ds, tmp_path / "ft", verbose=0)
    err = capsys.readouterr().err
    assert "init_from fast: the shipped model's float master" in err and "7 classes -> 3" in err
    assert "starts as its rows for angry, disgust, fear" in err and "new head trained alone for 5 epochs" in err
    assert f"then the whole network at learning rate {TrainConfig().learning_rate * 0.05:g}" in err
    import keras

    assert keras.models.load_model(res.model_path, compile=False).output_shape[-1] == 3
    with pytest.raises(ModelError, match="not a .tflite file"):
        train(TrainConfig.from_dict({**TINY, "init_from": "x/default.int8.tflite"}), ds, tmp_path / "bad", verbose=0)


def test_new_head_for_a_subset_of_the_classes_starts_from_their_rows():
    """Fine-tuning onto classes the model already has starts where it is: the restricted argmax."""
    import keras

    from emoedge.train.heads import replace_head

    inp = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(inp))
    out = keras.layers.Dense(7, activation="softmax", name="probs")(x)
    m = keras.Model(inp, out)
    m.get_layer("probs").set_weights([np.random.default_rng(0).normal(size=(8, 7)).astype(np.float32),
                                      np.arange(7, dtype=np.float32) / 10])
    keep = [2, 3, 6]                                       # fear, happy, neutral of the FER2013 order
    new = replace_head(m, 3, keep)
    x = np.random.default_rng(1).random((16, 48, 48, 1)).astype(np.float32)
    old_p = m.predict(x, verbose=0)[:, keep]
    np.testing.assert_allclose(new.predict(x, verbose=0), old_p / old_p.sum(1, keepdims=True), rtol=1e-4, atol=1e-5)
    fresh = replace_head(m, 3)
    assert not np.allclose(fresh.predict(x, verbose=0), new.predict(x, verbose=0))


def test_cli_evaluates_a_shipped_float_master(tmp_path, rng, monkeypatch, capsys):
    from emoedge.cli import main

    monkeypatch.setenv("EMOEDGE_MODELS", str(tmp_path / "cache"))
    imgs, labels = face_like(rng, 21, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 21)
    assert main(["evaluate", "--model", "fast", "--format", "keras", "--data", str(csv), "--usage", "PublicTest"]) == 0
    assert "masters/fast.keras" in capsys.readouterr().out
    assert json.loads((tmp_path / "cache" / "masters" / "fast.keras.json").read_text())["rebuilt_from"] == \
        "fast.int8.tflite"


def test_new_head_with_a_class_the_old_one_lacks_keeps_the_shared_rows():
    """FER2013's 7 classes -> FER+'s 8: the 7 shared rows are kept, contempt starts fresh."""
    import keras

    from emoedge.train.heads import replace_head

    inp = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(inp))
    out = keras.layers.Dense(7, activation="softmax", name="probs")(x)
    m = keras.Model(inp, out)
    w = np.random.default_rng(0).normal(size=(8, 7)).astype(np.float32)
    b = np.arange(7, dtype=np.float32) / 10
    m.get_layer("probs").set_weights([w, b])
    keep = [0, None, 1, 2, 3, 6, 4, 5]                     # FER+ order from FER2013's; contempt new
    new = replace_head(m, 8, keep)
    nw, nb = new.get_layer("probs_new_dense").get_weights()
    np.testing.assert_allclose(nw[:, [0, 2, 3, 4, 5, 6, 7]], w[:, [0, 1, 2, 3, 6, 4, 5]])
    assert nb[1] == pytest.approx(b.mean()) and not np.allclose(nw[:, 1], 0)


def test_vote_targets_mix_the_crowd_votes_into_the_labels(rng):
    from emoedge.data.datasets import FaceDataset
    from emoedge.train.steps import Splits, targets
    from emoedge.train.trainer import TrainConfig

    n = 4
    votes = np.array([[0.5, 0.5, 0], [0, 1, 0], [0, 0, 0], [0.2, 0.2, 0.6]], np.float32)
    labels = np.array([0, 1, 2, 2])
    ds = FaceDataset(images=np.zeros((n, 48, 48), np.uint8), labels=labels, class_names=("a", "b", "c"),
                     splits=np.array(["train"] * n), ids=np.arange(n), source="votes", soft_labels=votes)
    data = Splits(ds, ds, None, np.zeros((n, 48, 48, 1), np.float32), labels, np.zeros((n, 48, 48, 1)), labels, 3)
    t = targets(TrainConfig(vote_weight=0.5), data)
    np.testing.assert_allclose(t[0], [0.75, 0.25, 0])
    np.testing.assert_allclose(t[2], [0, 0, 1])          # no votes: the label alone
    np.testing.assert_allclose(targets(TrainConfig(vote_weight=1.0), data)[3], [0.2, 0.2, 0.6])
    np.testing.assert_allclose(targets(TrainConfig(), data), np.eye(3)[labels])
    plain = FaceDataset(images=ds.images, labels=labels, class_names=("a", "b", "c"), splits=ds.splits,
                        ids=ds.ids, source="tree/")
    with pytest.raises(ValueError, match="tree/ has no vote distributions"):
        targets(TrainConfig(vote_weight=1.0), Splits(plain, plain, None, data.x_train, labels, data.x_val, labels, 3))


def test_small_data_shrinks_the_batch_unless_asked_not_to(capsys):
    from emoedge.train.steps import fit_batch_to_data
    from emoedge.train.trainer import TrainConfig

    cfg = TrainConfig(batch_size=128)
    assert fit_batch_to_data(cfg, 1620).batch_size == 32          # 13 steps -> 51
    assert "batch 32 instead of 128" in capsys.readouterr().err
    assert fit_batch_to_data(cfg, 4000).batch_size == 64          # 31 steps -> 62
    assert fit_batch_to_data(cfg, 25000) is cfg                   # 195 steps: as it is
    assert fit_batch_to_data(TrainConfig(batch_size=32), 500).batch_size == 32
    assert fit_batch_to_data(TrainConfig(batch_size=128, fit_batch_to_data=False), 1620).batch_size == 128


def test_a_batch_size_on_the_command_line_is_kept(tmp_path, monkeypatch):
    import emoedge.train.trainer as trainer
    from emoedge.cli import main

    seen = {}

    def fake_train(config, ds, out, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "train", fake_train)
    imgs, labels = face_like(np.random.default_rng(0), 30, 3)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 30)
    with pytest.raises(SystemExit):
        main(["train", "--data", str(csv), "--config", "fast", "--set", "batch_size=128", "--out", str(tmp_path / "r")])
    assert seen["config"].batch_size == 128 and seen["config"].fit_batch_to_data is False
    with pytest.raises(SystemExit):
        main(["train", "--data", str(csv), "--config", "fast", "--out", str(tmp_path / "r2")])
    assert seen["config"].fit_batch_to_data is True


def test_init_from_a_shipped_name_with_the_same_classes_keeps_its_batchnorm_frozen():
    """The master's BatchNorm layers hold the folded statistics as an identity; rebuilt for training
    under bfloat16 with the same classes they must stay frozen (they were unfrozen once, and the first
    epoch then cost the default's first network 5 to 11 points of validation accuracy)."""
    import keras

    from emoedge.train.config_file import load_train_config
    from emoedge.train.steps import build_model

    m, rebuilt = build_model(load_train_config("onepass-distill"), 7, None)
    bns = [la for la in m._flatten_layers(include_self=False) if isinstance(la, keras.layers.BatchNormalization)]
    assert rebuilt and len(bns) == 9 and not any(b.trainable for b in bns)
    assert {la.dtype_policy.name for la in m.layers if la.weights} == {"mixed_bfloat16"}
    convs = [la for la in m.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs and all(c.trainable for c in convs)
