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
