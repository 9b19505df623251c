import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_grad_cam_has_the_input_size_and_changes_with_the_class():
    from emoedge.explain import attention_maps, grad_cam, overlay
    from emoedge.train import models

    m = models.build("vgg_cbam", 3, widths=(8, 8, 8, 8))
    x = np.random.default_rng(0).random((2, 48, 48, 1)).astype(np.float32)
    a = grad_cam(m, x, class_index=0)
    b = grad_cam(m, x, class_index=2)
    assert a.shape == (2, 48, 48) and 0 <= a.min() and a.max() <= 1
    assert not np.allclose(a, b)
    maps = attention_maps(m, x)
    assert len(maps) == 4 and all(v.shape == (2, 48, 48) for v in maps.values())
    assert overlay(x[0], a[0]).shape == (144, 144, 3)


def test_grad_cam_of_a_fused_ensemble_is_the_mean_of_its_members():
    from emoedge.explain import grad_cam
    from emoedge.train import models
    from emoedge.train.ensemble import fuse

    a = models.build("small_cnn", 3, width=8)
    b = models.build("vgg", 3, widths=(8, 8, 8, 8))
    x = np.random.default_rng(1).random((2, 48, 48, 1)).astype(np.float32)
    fused = fuse([a, b], flip=True)
    got = grad_cam(fused, x, class_index=1)
    want = np.mean([grad_cam(a, x, 1), grad_cam(b, x, 1)], axis=0)
    want /= want.reshape(2, -1).max(axis=1)[:, None, None]
    assert got.shape == (2, 48, 48)
    np.testing.assert_allclose(got, want, atol=1e-5)
