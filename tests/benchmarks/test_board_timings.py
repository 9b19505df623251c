"""Per-board stage times (issue 18, item 3): MAC counts, the estimate arithmetic, the profile rewrite
and `emoedge bench board` measuring this machine into a CSV that replaces a profile's times."""

from __future__ import annotations

import csv
import shutil

import pytest

from emoedge.benchmarks import board_timings as bt
from emoedge.core.macs import op_macs, tflite_macs
from emoedge.edge.deployment.profiles import PROFILES_DIR, load_profile


def test_op_macs_by_hand():
    assert op_macs("CONV_2D", [1, 8, 8, 1], [4, 3, 3, 1], [1, 8, 8, 4]) == 8 * 8 * 4 * 9
    assert op_macs("DEPTHWISE_CONV_2D", [1, 8, 8, 4], [1, 3, 3, 4], [1, 4, 4, 4]) == 4 * 4 * 4 * 9
    assert op_macs("FULLY_CONNECTED", [1, 256], [5, 256], [1, 5]) == 1280
    assert op_macs("MAX_POOL_2D", [1, 8, 8, 4], [1], [1, 4, 4, 4]) == 0
    # a batch of views counts every view
    assert op_macs("CONV_2D", [4, 8, 8, 1], [4, 3, 3, 1], [4, 8, 8, 4]) == 4 * 8 * 8 * 4 * 9


def test_tflite_macs_counts_a_known_network(tmp_path):
    import tensorflow as tf

    m = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3, padding="same"),
                             tf.keras.layers.DepthwiseConv2D(3, padding="same"), tf.keras.layers.Flatten(),
                             tf.keras.layers.Dense(5)])
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    assert tflite_macs(path) == 8 * 8 * 4 * 9 + 8 * 8 * 4 * 9 + 256 * 5


def test_board_ratios_follow_the_published_runs():
    r = bt.board_ratios()
    assert r["rpi4"][0] == 1.0
    assert r["rpi5"][0] == pytest.approx(16.9 / 82.7)
    assert r["rpi-zero2w"][0] == pytest.approx(271.5 / 82.7 * 1.4)       # Pi 3B+ scaled to 1.0 GHz
    assert r["rpi-zero2w"][0] > r["coral-devboard"][0] > r["rpi4"][0] > r["rpi5"][0]
    # every board with estimates has a profile, and every anchor names where it was published
    assert all((PROFILES_DIR / f"{p}.yaml").is_file() for p in bt.BOARD_PROFILES.values())
    assert all(a.source.startswith("https://") and a.ms > 0 for a in bt.ANCHORS)


def test_pi_profiles_cite_the_estimate_and_x86_is_measured():
    for name in bt.BOARD_PROFILES.values():
        text = (PROFILES_DIR / f"{name}.yaml").read_text()
        assert "ESTIMATES" in text and "docs/benchmarks/pi-timings/estimates.md" in text, name
        assert set(load_profile(name).board.detector_ms) == set(bt.DETECTOR_STAGES), name
    assert "MEASURED" in (PROFILES_DIR / "x86-dev.yaml").read_text()
    # the slower board is estimated slower on every detector
    p4, p5 = load_profile("rpi4").board.detector_ms, load_profile("rpi5").board.detector_ms
    assert all(p5[d] < p4[d] for d in bt.DETECTOR_STAGES)


def test_write_profile_times_replaces_the_times_and_their_comment_only(tmp_path):
    for f in PROFILES_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "rpi4.yaml"
    before = path.read_text()
    bt.write_profile_times(path, {"haar": 101.2, "blazeface": 9.01}, ["MEASURED here", "second line"])
    after = path.read_text()
    assert "detector_ms: {haar: 102, blazeface: 10}" in after
    assert "  # MEASURED here\n  # second line\n  detector_ms:" in after
    assert "ESTIMATES" not in after                      # the old comment went with the old times
    rest = [ln for ln in before.splitlines() if "detector_ms" not in ln and not ln.strip().startswith("#")]
    assert all(ln in after.splitlines() for ln in rest)  # nothing else changed
    assert load_profile("rpi4", search=tmp_path).board.detector_ms == {"haar": 102, "blazeface": 10}
    (tmp_path / "bad.yaml").write_text("board:\n  name: x\n")
    with pytest.raises(ValueError, match="bad.yaml: no 'detector_ms:' line"):
        bt.write_profile_times(tmp_path / "bad.yaml", {"haar": 1}, [])


def test_bench_board_measures_this_machine_into_a_csv_and_a_profile(tmp_path, capsys):
    from emoedge.cli import main

    prof = tmp_path / "mine.yaml"
    shutil.copy(PROFILES_DIR / "x86-dev.yaml", prof)
    code = main(["bench", "board", "--threads", "1", "--runs", "4", "--source", "demo", "--shared", str(tmp_path),
                 "--detector-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                 "--write-profile", str(prof)])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "out" / "board.csv").open()))
    stages = {r["stage"]: r for r in rows}
    assert {"haar", "fast", "default"} <= set(stages)
    assert all(r["method"] == "measured" and float(r["ms"]) > 0 and r["threads"] == "1" for r in rows)
    err = capsys.readouterr().err
    assert "blazeface" in err and "not timed" in err           # no detector files: said, not hidden
    text = prof.read_text()
    assert "MEASURED" in text and f"haar: {int(-(-float(stages['haar']['ms']) // 1))}" in text


def test_shipped_models_passes_and_macs_per_face():
    from emoedge.core.macs import passes_per_face
    from emoedge.core.shipped import read_manifest, resolve_model

    d, f, p8 = (resolve_model(n) for n in ("default", "fast", "ferplus8"))
    assert passes_per_face(d) == 8 and passes_per_face(f) == 1 and passes_per_face(p8) == 1
    # the default runs ferplus8's network (its first member) on 4 views, and a second one like it
    assert 7.9 < tflite_macs(d) / tflite_macs(p8) < 8.1
    for path in (d, f, p8):                                   # recorded in the manifests, as counted
        m = read_manifest(path)
        assert m["passes_per_face"] == passes_per_face(path) and m["macs_per_face"] == tflite_macs(path)
