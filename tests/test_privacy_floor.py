"""A profile's privacy rule and lawful-use requirement are a floor: no --set, flag, profile that
extends it or Python API call below it can lower them."""

import dataclasses
import shutil

import pytest

from emoedge.cli import main
from emoedge.edge.deployment.profiles import PROFILES_DIR, load_profile
from emoedge.edge.runtime.config import ConfigError, RuntimeConfig
from emoedge.edge.runtime.pipeline import Pipeline

CLASSROOM = "classroom-sensor-rpi4"
PURPOSE = ["--set", "deployment.purpose=safety study under ethics approval", "--set", "deployment.jurisdiction=UK"]


def _profiles(tmp_path):
    for f in PROFILES_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)


def _run(tmp_path, *extra):
    return ["run", "--profile", CLASSROOM, "--source", "demo", "--detector", "haar", "--threads", "1",
            "--db", str(tmp_path / "s.sqlite"), "--max-frames", "2", "--set", f"deployment.data_dir={tmp_path}",
            *extra]


def test_set_mode_dev_with_keep_images_and_a_video_is_refused(tmp_path, capsys):
    out = tmp_path / "v.mp4"
    code = main(_run(tmp_path, *PURPOSE, "--set", "deployment.mode=dev", "--set", "deployment.keep_images=true",
                     "--video-out", str(out)))
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and not (tmp_path / "s.sqlite").exists()
    assert "deployment.mode" in err and "privacy rule 'no-images'" in err and "floor" in err


def test_set_mode_dev_alone_does_not_start_without_purpose(tmp_path, capsys):
    assert main(_run(tmp_path, "--set", "deployment.mode=dev")) == 2
    err = capsys.readouterr().err
    assert "classroom sensor" in err and "purpose" in err and not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("text", [
    "deployment:\n  mode: dev\n  keep_images: true\n",
    "deployment:\n  mode: kiosk\nruntime:\n  fullscreen: true\n",
])
def test_a_profile_that_extends_the_classroom_cannot_lower_it(tmp_path, text):
    _profiles(tmp_path)
    path = tmp_path / "mine.yaml"
    path.write_text(f"extends: {CLASSROOM}\n{text}")
    with pytest.raises(ConfigError, match=rf"{path}: deployment.mode: .*{CLASSROOM}.yaml is a classroom sensor"):
        load_profile(path, search=tmp_path)


def test_an_explicit_runtime_privacy_is_a_floor_for_profiles_below(tmp_path):
    _profiles(tmp_path)
    (tmp_path / "strict.yaml").write_text("extends: x86-dev\nruntime:\n  privacy: no-images\n")
    (tmp_path / "loose.yaml").write_text("extends: strict\nruntime:\n  privacy: images\n")
    with pytest.raises(ConfigError, match=r"runtime.privacy: .*strict.yaml sets privacy rule 'no-images'"):
        load_profile(tmp_path / "loose.yaml")
    with pytest.raises(ConfigError, match="runtime.privacy: .*a floor"):
        load_profile(tmp_path / "strict.yaml", ["runtime.privacy=no-video"])


def test_the_python_api_cannot_lower_it():
    prof = load_profile(CLASSROOM, ["deployment.purpose=study", "deployment.jurisdiction=UK"])
    with pytest.raises(ConfigError, match="privacy rule 'no-images' is a floor"):
        prof.runtime.replace(privacy="images", video_out="v.mp4")
    with pytest.raises(ConfigError, match="require_purpose"):
        prof.runtime.replace(require_purpose=False)
    for config in (RuntimeConfig(source="demo"), dataclasses.replace(prof.runtime, privacy="images"),
                   dataclasses.replace(prof.runtime, require_purpose=False)):
        with pytest.raises(ConfigError, match="the deployment \\(mode sensor"):
            Pipeline(config, deployment=prof.deployment)


@pytest.mark.parametrize("route", [["--events", "{ev}"], ["--set", "runtime.events={ev}"]])
def test_the_classroom_profile_refuses_per_face_events(route, tmp_path, capsys):
    ev = tmp_path / "e.jsonl"
    assert main(_run(tmp_path, *PURPOSE, *[a.format(ev=ev) for a in route])) == 2
    err = capsys.readouterr().err
    assert "key 'events': privacy rule 'no-images'" in err and "per-face" in err and not ev.exists()


def test_an_opt_in_below_no_floor_still_works():
    """A dev profile keeps its opt-in: keep_images=true allows a video (no file of its chain forbids it)."""
    prof = load_profile("x86-dev", ["deployment.keep_images=true"])
    assert prof.runtime.replace(video_out="v.mp4").video_out == "v.mp4"
    stricter = load_profile("kiosk-rpi4").runtime.replace(privacy="no-images", display=False, fullscreen=False)
    assert stricter.privacy == "no-images"
