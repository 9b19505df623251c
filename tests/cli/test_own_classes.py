"""The README's "your own classes" path, command for command, on real FER2013 faces: a folder tree
of three classes -> fine-tune from a shipped model -> int8 -> evaluate -> run on the video. Each
command runs as its own process, as a user runs it (the default training config turns oneDNN on,
which TensorFlow reads once per process)."""

import json
import os
import subprocess
import sys

import pytest
from testdata import FER_CSV, MEDIA, need_shared

pytestmark = pytest.mark.slow


def test_folder_tree_to_fine_tune_to_int8_to_evaluate_to_run(tmp_path):
    env = {**os.environ, "EMOEDGE_MODELS": str(tmp_path / "cache")}

    def main(args: list[str]) -> int:
        r = subprocess.run([sys.executable, "-m", "emoedge", *args], env=env, capture_output=True, text=True,
                           timeout=900)
        main.err = r.stderr
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-3000:])
        return r.returncode

    need_shared(FER_CSV)
    need_shared(MEDIA / "short_hamilton_clip.mp4")
    tree, run = tmp_path / "three_class", tmp_path / "runs" / "mine"
    # 0. (a folder tree of one's own; here made from three classes of FER2013)
    assert main(["data", "export", str(FER_CSV), "--classes", "happy,neutral,fear",
                 "--per-class", "Training=40,PublicTest=20", "--out", str(tree)]) == 0
    assert sorted(p.name for p in (tree / "train").iterdir()) == ["fear", "happy", "neutral"]
    assert len(list((tree / "test" / "happy").glob("*.png"))) == 20
    # 1. look at it
    assert main(["data", "inspect", str(tree), "--out", str(tmp_path / "inspect"), "--no-plots"]) == 0
    # 2. fine-tune from a shipped model (short here)
    assert main(["train", "--data", str(tree), "--set", "init_from=fast", "--set", "epochs=1", "--set", "head_epochs=1",
                 "--out", str(run)]) == 0
    err = main.err
    assert "init_from fast: the shipped model's float master" in err and "7 classes -> 3" in err
    assert json.loads((run / "run.json").read_text())["class_names"] == ["fear", "happy", "neutral"]
    # 3. int8, calibrated on the tree, with the quantization report
    assert main(["convert", "--model", str(run / "model.keras"), "--to", "int8", "--calib", str(tree),
                 "--out", str(run / "conv"), "--report", "--data", str(tree)]) == 0
    int8 = run / "conv" / "model.int8.tflite"
    assert int8.is_file()
    # 4. evaluate the int8 file on the tree's test split
    assert main(["evaluate", "--model", str(int8), "--data", str(tree), "--usage", "test",
                 "--json", str(tmp_path / "eval.json")]) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["n"] == 60 and ev["class_names"] == ["fear", "happy", "neutral"]
    assert ev["accuracy"] > 0.5          # the shipped features already separate these classes
    # 5. run it on the video
    assert main(["run", "--source", str(MEDIA / "short_hamilton_clip.mp4"), "--model", str(int8),
                 "--max-frames", "30", "--summary-json", str(tmp_path / "sum.json")]) == 0
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert summary["frames"] == 30 and summary["faces_seen"] >= 1
    assert summary["classifications"] >= 1
    assert set(summary["labels"]) and set(summary["labels"]) <= {"fear", "happy", "neutral", "uncertain"}
