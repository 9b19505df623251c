"""Recipes: every shipped model's recorded lineage as commands that expand, run in order and resume."""

import json
import sys

import numpy as np
import pytest
import yaml
from conftest import face_like, write_fer_csv

from emoedge.recipes import (
    STAMP,
    RecipeError,
    available_recipes,
    card_commands,
    load_recipe,
    plan,
    run_recipe,
)


def test_every_shipped_model_has_a_recipe_that_expands():
    from emoedge.core.shipped import SHIPPED

    assert set(available_recipes()) == set(SHIPPED)
    for name in SHIPPED:
        r = load_recipe(name)
        assert r.model == name
        cmds = card_commands(r, "D.csv", "RUNS")
        assert cmds[-1].startswith("emoedge models ship --run RUNS/") and f"--name {name}" in cmds[-1]
        assert all("{" not in c for c in cmds), cmds
        assert any(c.startswith("emoedge train --data D.csv") for c in cmds)


def test_the_default_recipe_is_the_cards_lineage():
    r = load_recipe("default")
    assert [s.name for s in r.steps] == ["default-v1", "default-v2", "default-snap1", "default-swa2",
                                         "default-snap2", "default-swa2s2-zl", "default-ship"]
    assert r.minutes == 283
    cmds = card_commands(r, "fer.csv", "R")
    assert cmds[1] == ("emoedge train --data fer.csv --config default-stage2 "
                       "--set init_from=R/default-v1/model.keras --out R/default-v2")


def _write(tmp_path, doc) -> str:
    p = tmp_path / "r.recipe.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


@pytest.mark.parametrize("doc, message", [
    ({"model": "x", "steps": [{"name": "a", "command": "train"}], "colour": 1}, "unknown key"),
    ({"model": "x", "steps": [{"name": "a", "command": "train --out {b}"}]}, "names no earlier step"),
    ({"model": "x", "steps": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}, "used twice"),
    ({"model": "x", "steps": [{"name": "out", "command": "x"}]}, "key 'name'"),
    ({"model": "x", "steps": []}, "non-empty list"),
    ({"model": "x", "labels": "votes", "steps": [{"name": "a", "command": "x"}]}, "key 'labels'"),
])
def test_bad_recipes_are_refused_with_file_and_key(tmp_path, doc, message):
    with pytest.raises(RecipeError, match=message) as e:
        load_recipe(_write(tmp_path, doc))
    assert "r.recipe.yaml" in str(e.value)


def test_labels_and_paths_with_spaces_expand_to_arguments(tmp_path):
    r = load_recipe(_write(tmp_path, {"model": "x", "labels": "ferplus", "steps": [
        {"name": "a", "command": "train --data {data} {labels} --out {out}"}]}))
    (p,) = plan(r, "my data/fer.csv", tmp_path / "runs dir")
    assert p.argv == ("train", "--data", "my data/fer.csv", "--labels", "ferplus", "--out",
                      str(tmp_path / "runs dir" / "a"))
    assert not p.done


@pytest.mark.slow
def test_a_recipe_runs_its_steps_and_resumes_after_a_failure(tmp_path, rng, capsys):
    """Train, then a step that fails; the rerun skips the finished training and retries the rest."""
    imgs, labels = face_like(rng, 90, 3)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 60 + ["PublicTest"] * 30)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"arch": "small_cnn", "arch_kwargs": {"width": 8}, "epochs": 1,
                                   "batch_size": 32, "early_stopping_patience": 0, "val_fraction": 0.2}))
    doc = {"model": "x", "steps": [
        {"name": "t1", "command": f"train --data {{data}} --config {cfg} --out {{out}}"},
        {"name": "e1", "command": "evaluate --model {t1}/model.keras --data {data} --usage NoSuchSplit"}]}
    r = load_recipe(_write(tmp_path, doc))
    runs = tmp_path / "runs"
    with pytest.raises(RecipeError, match="step e1 failed"):
        run_recipe(r, str(csv), runs)
    assert (runs / "t1" / "model.keras").is_file()
    stamp = json.loads((runs / "t1" / STAMP).read_text())
    assert stamp["step"] == "t1" and stamp["command"].startswith("emoedge train")
    mtime = (runs / "t1" / "model.keras").stat().st_mtime_ns
    doc["steps"][1]["command"] = "evaluate --model {t1}/model.keras --data {data} --usage PublicTest"
    r = load_recipe(_write(tmp_path, doc))
    capsys.readouterr()
    steps = run_recipe(r, str(csv), runs)
    out = capsys.readouterr().out
    assert "t1: done before" in out and (runs / "e1" / STAMP).is_file()
    assert (runs / "t1" / "model.keras").stat().st_mtime_ns == mtime       # not retrained
    assert [s.done for s in steps] == [True, False]


def test_cli_dry_run_lists_the_commands(capsys):
    from emoedge.cli import main

    assert main(["train", "--recipe", "fast", "--data", sys.executable, "--out", "RUNS", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[4/5] fast-pruned: would run `emoedge train" in out
    assert "soft_targets_from=RUNS/default-v2-tta/model.keras" in out
    assert main(["train", "--recipe", "fast", "--data", "x", "--out", "R", "--set", "epochs=1"]) == 2   # bad input
    assert "--config, --set" in capsys.readouterr().err
    assert np.isfinite(load_recipe("fast").minutes)


def test_each_shipped_card_lists_its_recipes_commands():
    from emoedge.core.shipped import MODELS_DIR, shipped_models

    for name in shipped_models():
        card = (MODELS_DIR / f"{name}.md").read_text()
        r = load_recipe(name)
        assert f"`emoedge train --recipe {name} --data DATA --out RUNS`" in card
        for cmd in card_commands(r):
            assert f"`{cmd}`" in card, (name, cmd)


def test_a_card_rendered_before_recipes_gets_the_recipes_commands_beside_what_was_run():
    from emoedge.convert.modelcard import with_recipe_commands

    card = "# x\n\n## Training\n- Command: `old`\n- Time on this machine (2 x86 cores, no GPU): 98 s.\n- Settings: s\n"
    new = with_recipe_commands(card, load_recipe("hoglbp"))
    assert "- Command: `old`" in new                       # what was run stays; the recipe comes after it
    assert new.index("- Command: `old`") < new.index("1. `emoedge train --data DATA --config hoglbp --out RUNS/hoglbp`")
    assert new.endswith("- Time on this machine (2 x86 cores, no GPU): 98 s.\n- Settings: s\n")
    assert with_recipe_commands(new, load_recipe("hoglbp")) == new
    with pytest.raises(ValueError, match="no '## Training'"):
        with_recipe_commands("# x\n", load_recipe("hoglbp"))
