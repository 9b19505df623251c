import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_grad_cam_has_the_input_size_and_changes_with_the_class():
    from emoedge.evaluate import attention_maps, grad_cam, overlay
    from emoedge.train import zoo

    m = zoo.build("vgg_cbam", 3, widths=(8, 8, 8, 8))
    x = np.random.default_rng(0).random((2, 48, 48, 1)).astype(np.float32)
    a = grad_cam(m, x, class_index=0)
    b = grad_cam(m, x, class_index=2)
    assert a.shape == (2, 48, 48) and a.min() >= 0 and a.max() <= 1
    assert not np.allclose(a, b)
    maps = attention_maps(m, x)
    assert len(maps) == 4 and all(v.shape == (2, 48, 48) for v in maps.values())
    assert overlay(x[0], a[0]).shape == (144, 144, 3)


def test_grad_cam_of_a_fused_ensemble_is_the_mean_of_its_members():
    from emoedge.evaluate import grad_cam
    from emoedge.train import zoo
    from emoedge.train.fusion import fuse

    a = zoo.build("small_cnn", 3, width=8)
    b = zoo.build("vgg", 3, widths=(8, 8, 8, 8))
    x = np.random.default_rng(1).random((2, 48, 48, 1)).astype(np.float32)
    fused = fuse([a, b], flip=True)
    got = grad_cam(fused, x, class_index=1)
    want = np.mean([grad_cam(a, x, 1), grad_cam(b, x, 1)], axis=0)
    want /= want.reshape(2, -1).max(axis=1)[:, None, None]
    assert got.shape == (2, 48, 48)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_explain_writes_an_attention_grid_per_cbam_block(tmp_path, rng):
    from testdata import face_like, write_fer_csv

    from emoedge.cli import main
    from emoedge.train import zoo

    imgs, labels = face_like(rng, 70, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 70)
    zoo.build("vgg_cbam", 7, widths=(8, 8, 8, 8)).save(tmp_path / "cbam.keras")
    assert main(["explain", "--model", str(tmp_path / "cbam.keras"), "--data", str(csv), "--usage", "PublicTest",
                 "--per-class", "1", "--out", str(tmp_path / "x")]) == 0
    grids = sorted(p.name for p in (tmp_path / "x").glob("*.png"))
    assert grids == ["attention_s1_cbam_spatial.png", "attention_s2_cbam_spatial.png", "attention_s3_cbam_spatial.png",
                     "attention_s4_cbam_spatial.png", "gradcam_grid.png"]
    assert all((tmp_path / "x" / g).stat().st_size > 5000 for g in grids)
    # a model without CBAM gets the Grad-CAM grid only
    zoo.build("vgg", 7, widths=(8, 8), dense=8).save(tmp_path / "plain.keras")
    main(["explain", "--model", str(tmp_path / "plain.keras"), "--data", str(csv), "--usage", "PublicTest",
          "--per-class", "1", "--out", str(tmp_path / "y")])
    assert [p.name for p in (tmp_path / "y").glob("*.png")] == ["gradcam_grid.png"]
