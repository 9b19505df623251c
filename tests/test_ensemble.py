import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_fused_model_is_the_mean_of_members_and_survives_save_load_and_int8(tmp_path):
    from emoedge.convert.tflite import convert_keras
    from emoedge.edge.interpreter import TFLiteClassifier
    from emoedge.train import models
    from emoedge.train.ensemble import fuse, fuse_files
    from emoedge.train.keras_io import load_keras

    a = models.build("small_cnn", 3, width=8)
    b = models.build("vgg_cbam", 3, widths=(8, 8, 8, 8))
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
        fuse([a, models.build("small_cnn", 4, width=8)])


def test_members_and_ensemble_compared_on_the_same_split(tmp_path):
    from conftest import face_like, write_fer_csv

    from emoedge.data.datasets import load_fer2013_csv
    from emoedge.train import models
    from emoedge.train.ensemble import compare_members, fuse_files

    imgs, labels = face_like(np.random.default_rng(0), 70, 7)
    ds = load_fer2013_csv(write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 70))
    paths = []
    for i in range(2):
        p = tmp_path / f"m{i}.keras"
        models.build("small_cnn", 7, width=8).save(p)
        paths.append(p)
    fused = fuse_files(paths, tmp_path / "e.keras", flip=True)
    rows = compare_members(paths, fused, ds, runs=20)
    assert [r["role"] for r in rows] == ["member", "member", "ensemble"]
    assert all(0 <= r["accuracy"] <= 1 and r["latency_ms_per_face"] > 0 for r in rows)
    assert rows[2]["latency_ms_per_face"] > rows[0]["latency_ms_per_face"]      # 4 passes cost more than 1
