"""EMOEDGE_REQUIRE_REAL=1 (set by .ci/run) turns the skips of the real-component tests (Mosquitto,
Chromium, ../shared) into failures; other skips stay skips; without it every skip is a skip."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from real_components import real_component_of

TESTS = Path(__file__).resolve().parent
SAMPLE = '''
import pytest

def test_broker():
    pytest.skip("no mosquitto broker on this machine (apt-get install mosquitto; .ci/run installs it)")

@pytest.mark.skipif(True, reason="no Chromium on this machine (apt-get install chromium; .ci/run does)")
def test_browser():
    pass

def test_data():
    pytest.skip("/x/shared/media is absent: real-data tests need ../shared (or EMOEDGE_SHARED)")

def test_root():
    pytest.skip("cannot mount a small tmpfs to fill: needs root")

def test_runs():
    pass
'''


def _pytest(tmp_path, require: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "EMOEDGE_REQUIRE_REAL"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if require is not None:
        env["EMOEDGE_REQUIRE_REAL"] = require
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p",
                           "real_components", "test_sample.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_real_component_skips_fail_when_required(tmp_path):
    r = _pytest(tmp_path, "1")
    assert r.returncode == 1, r.stdout
    # the two skipped in the test fail; the one a skipif marker skips fails in its setup (an error)
    assert "2 failed, 1 passed, 1 skipped, 1 error" in r.stdout, r.stdout
    assert "EMOEDGE_REQUIRE_REAL=1: a real-component test must run here, but it skipped: " in r.stdout
    assert "SKIPPED [1] test_sample.py" in r.stdout and "needs root" in r.stdout      # -rs lists it


@pytest.mark.parametrize("require", [None, "0"])
def test_without_the_switch_every_skip_is_a_skip(tmp_path, require):
    r = _pytest(tmp_path, require)
    assert r.returncode == 0 and "1 passed, 4 skipped" in r.stdout, r.stdout


def test_the_skip_reasons_of_the_suite_name_their_component():
    assert real_component_of("no mosquitto broker on this machine") == "mosquitto"
    assert real_component_of("paho-mqtt is not installed (pip install -e '.[fleet]')") == "paho-mqtt"
    assert real_component_of("the shared clip is absent") == "shared"
    assert real_component_of("no Picamera2 (not a Raspberry Pi)") is None
    assert real_component_of("systemd-analyze is not installed") is None
