"""Hardware tests: run only on a device that has the hardware (pytest -m hardware)."""

import importlib.util

import pytest

pytestmark = pytest.mark.hardware


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is None, reason="no Picamera2 (not a Raspberry Pi)")
def test_pi_camera_delivers_frames_with_a_y_plane():
    from emoedge.edge.runtime.sources import open_source

    src = open_source("picamera", lores=(320, 240))
    try:
        f = src.read()
        assert f is not None and f.gray.shape == (240, 320)
    finally:
        src.close()


def _edgetpu_present() -> bool:
    import ctypes.util

    return ctypes.util.find_library("edgetpu") is not None


@pytest.mark.skipif(not _edgetpu_present(), reason="no libedgetpu (no Edge TPU runtime on this machine)")
def test_edgetpu_delegate_loads(tiny_tflite):
    from emoedge.edge.engines.interpreter import make_interpreter

    _, choice = make_interpreter(tiny_tflite, delegate="edgetpu")
    assert choice.delegate == "edgetpu"
