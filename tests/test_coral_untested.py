"""The Coral profiles ask for an Edge TPU model never compiled or run here (issue 28): each says so in
its board section (`untested`: why and what is needed), `emoedge doctor` warns with it, the README too."""

from pathlib import Path

import pytest

from emoedge.edge.deployment.doctor import WARN, diagnose
from emoedge.edge.deployment.profiles import list_profiles, load_profile

CORAL = ("coral-devboard", "rpi4-coral-usb")


@pytest.mark.parametrize("name", CORAL)
def test_coral_profiles_say_they_are_untested_and_what_is_needed(name):
    text = " ".join(load_profile(name).board.untested.split())
    assert "never been compiled or run here" in text and "edgetpu_compiler" in text
    assert "libedgetpu1-std" in text and f"emoedge doctor --profile {name}" in text


def test_only_the_edge_tpu_profiles_are_marked_untested():
    marked = {n for n in list_profiles() if not n.startswith("_") and load_profile(n).board.untested}
    edgetpu = {n for n in list_profiles() if not n.startswith("_") and load_profile(n).runtime.delegate == "edgetpu"}
    assert marked == edgetpu == set(CORAL)


@pytest.mark.parametrize("name", CORAL)
def test_doctor_warns_that_the_profile_is_untested(tmp_path, name):
    checks = {c.name: c for c in diagnose(tmp_path, profile=name, have_picamera2=False)}
    assert checks["untested"].status == WARN and "UNTESTED profile" in checks["untested"].line()
    assert "untested" not in {c.name for c in diagnose(tmp_path, profile="rpi4", have_picamera2=False)}


def test_the_readme_says_the_coral_profiles_are_untested():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "UNTESTED" in readme and "never been compiled or run here" in " ".join(readme.split())
