"""The one detector registry (emoedge.edge.faces.registry)."""

import pytest


def test_one_detector_registry():
    from emoedge.edge.faces import fetch
    from emoedge.edge.faces.detect import DETECTORS, HaarDetector, make_detector
    from emoedge.edge.runtime.config import ConfigError, RuntimeConfig

    assert list(DETECTORS) == ["haar", "blazeface", "blazeface-full", "ssd"]
    assert isinstance(make_detector("haar"), HaarDetector)
    assert fetch.detector_files() == {n: k.files for n, k in DETECTORS.items() if k.files}
    for name in DETECTORS:
        assert RuntimeConfig(detector=name).detector == name
    with pytest.raises(ConfigError, match="must be one of haar, blazeface, blazeface-full, ssd"):
        RuntimeConfig(detector="yolo")
    with pytest.raises(ValueError, match="unknown detector model 'haar'"):
        fetch.locate("haar")
