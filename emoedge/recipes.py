"""Recipes: the recorded lineage of a shipped model as commands that rerun it end to end.

A recipe (``edge/models/NAME.recipe.yaml``, beside the model's card and manifest) lists steps, each
an ``emoedge`` command with placeholders: ``{data}`` (the dataset path), ``{labels}`` (``--labels X``
or nothing), ``{out}`` (this step's folder), ``{STEP}`` (an earlier step's folder). A plan expands
them under one runs folder (``RUNS/STEP``); running it skips the steps already done (a stamp file
written when a step's command exits 0) and reruns the rest: an interrupted ``train`` step resumes
itself from its checkpoint. Only the standard library and yaml here: the runner starts each step
as a child process (``python -m emoedge ...``), so it imports no training or conversion code, and
model cards (the conversion side) can print the same commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from emoedge.core.errors import BadInputError
from emoedge.core.safeyaml import load_yaml_text

RECIPES_DIR = Path(__file__).resolve().parent / "edge" / "models"
RECIPE_SUFFIX = ".recipe.yaml"
STAMP = ".recipe-step-done"   # in a step's folder: the step finished (its command exited 0)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_KEYS = {"model", "description", "data", "labels", "steps"}
_STEP_KEYS = {"name", "command", "minutes", "note"}
_RESERVED = {"data", "labels", "out", "runs"}


class RecipeError(BadInputError):
    """A recipe file that cannot be used: the message names the file and the problem."""


@dataclass(frozen=True)
class RecipeStep:
    name: str            # also its folder under the runs folder
    command: str         # an emoedge command line with placeholders, without the leading "emoedge"
    minutes: float | None = None  # what it took when the shipped model was made (this machine)
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    model: str           # the shipped name it reproduces
    description: str
    data: str            # what dataset it expects, in words
    labels: str | None   # the label set of a FER2013 CSV (--labels), if it needs one
    steps: tuple[RecipeStep, ...]
    source: Path

    @property
    def minutes(self) -> float:
        return float(sum(s.minutes or 0 for s in self.steps))


@dataclass(frozen=True)
class PlannedStep:
    step: RecipeStep
    folder: Path
    argv: tuple[str, ...]   # the emoedge arguments, placeholders filled
    done: bool

    @property
    def command_line(self) -> str:
        return "emoedge " + shlex.join(self.argv)


def available_recipes() -> list[str]:
    return sorted(p.name[:-len(RECIPE_SUFFIX)] for p in RECIPES_DIR.glob(f"*{RECIPE_SUFFIX}"))


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's recipe by name, or a recipe file."""
    s = str(name_or_path)
    if _NAME.match(s) and not s.endswith((".yaml", ".yml")):
        p = RECIPES_DIR / f"{s}{RECIPE_SUFFIX}"
        if not p.is_file():
            raise RecipeError(f"{s}: no such recipe (shipped recipes: {', '.join(available_recipes()) or 'none'}; "
                              f"or give a recipe .yaml file)")
        return p
    p = Path(s)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    return p


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """Read and check a recipe: known keys only, unique step names, placeholders that name earlier steps."""
    path = recipe_path(name_or_path)
    try:
        raw = load_yaml_text(path.read_text(), str(path), RecipeError)
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with keys {sorted(_KEYS)}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("model", "steps"):
        if key not in raw:
            raise RecipeError(f"{path}: missing key {key!r}")
    if not isinstance(raw["steps"], list) or not raw["steps"]:
        raise RecipeError(f"{path}: key 'steps': a non-empty list of steps")
    labels = raw.get("labels")
    if labels not in (None, "fer2013", "ferplus", "ferplus7"):
        raise RecipeError(f"{path}: key 'labels': fer2013, ferplus, ferplus7 or absent, got {labels!r}")
    steps: list[RecipeStep] = []
    seen: set[str] = set()
    for i, s in enumerate(raw["steps"], 1):
        where = f"{path}: steps[{i}]"
        if not isinstance(s, dict):
            raise RecipeError(f"{where}: a mapping with keys {sorted(_STEP_KEYS)}")
        bad = sorted(set(s) - _STEP_KEYS)
        if bad:
            raise RecipeError(f"{where}: unknown key(s) {bad}; allowed: {sorted(_STEP_KEYS)}")
        name, command = s.get("name"), s.get("command")
        if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
            raise RecipeError(f"{where}: key 'name': a folder name (lower case, digits, - _ .), "
                              f"not one of {sorted(_RESERVED)}; got {name!r}")
        if name in seen:
            raise RecipeError(f"{where}: step name {name!r} used twice")
        if not isinstance(command, str) or not command.strip():
            raise RecipeError(f"{where} ({name}): key 'command': an emoedge command line")
        for ref in _PLACEHOLDER.findall(command):
            if ref not in _RESERVED and ref not in seen:
                raise RecipeError(f"{where} ({name}): {{{ref}}} names no earlier step "
                                  f"(earlier: {sorted(seen) or 'none'}; or one of {sorted(_RESERVED)})")
        minutes = s.get("minutes")
        if minutes is not None and (not isinstance(minutes, (int, float)) or minutes < 0):
            raise RecipeError(f"{where} ({name}): key 'minutes': a number >= 0, got {minutes!r}")
        seen.add(name)
        steps.append(RecipeStep(name, " ".join(command.split()), None if minutes is None else float(minutes),
                                str(s.get("note", ""))))
    return Recipe(str(raw["model"]), str(raw.get("description", "")), str(raw.get("data", "")), labels,
                  tuple(steps), path)


def expand(recipe: Recipe, data: str, runs: str | os.PathLike, step: RecipeStep) -> tuple[str, ...]:
    """A step's command as emoedge arguments, its placeholders filled."""
    runs = Path(runs)
    values = {"data": str(data), "runs": str(runs), "out": str(runs / step.name),
              "labels": f"--labels {recipe.labels}" if recipe.labels else ""}
    values.update({s.name: str(runs / s.name) for s in recipe.steps})
    # split first, then fill: a path with spaces stays one argument
    argv: list[str] = []
    for token in shlex.split(step.command):
        filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], token)
        if token == "{labels}":
            argv += shlex.split(filled)
        else:
            argv.append(filled)
    return tuple(argv)


def plan(recipe: Recipe, data: str, runs: str | os.PathLike) -> list[PlannedStep]:
    runs = Path(runs)
    return [PlannedStep(s, runs / s.name, expand(recipe, data, runs, s), (runs / s.name / STAMP).is_file())
            for s in recipe.steps]


def card_commands(recipe: Recipe, data: str = "DATA", runs: str = "RUNS") -> list[str]:
    """The recipe's steps as the command lines a model card lists (placeholders for data and runs)."""
    return [p.command_line for p in plan(recipe, data, runs)]


def run_recipe(recipe: Recipe, data: str, runs: str | os.PathLike, until: str | None = None,
               dry_run: bool = False, log=print) -> list[PlannedStep]:
    """Run the steps not yet done, in order, each as ``python -m emoedge ...``; stop at the first
    that fails (its exit code in the error) and after ``until`` (a step name). Returns the plan."""
    steps = plan(recipe, data, runs)
    names = [p.step.name for p in steps]
    if until is not None and until not in names:
        raise RecipeError(f"{recipe.source}: --until {until!r}: no such step (steps: {', '.join(names)})")
    if not Path(data).exists():
        raise RecipeError(f"{data}: the dataset is not there "
                          f"(recipe {recipe.model} expects {recipe.data or 'a dataset'})")
    Path(runs).mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {p.step.name}"
        if p.done:
            log(f"{head}: done before ({p.folder / STAMP}), skipped")
        elif dry_run:
            log(f"{head}: would run `{p.command_line}`"
                + (f" (took {p.step.minutes:g} min when the shipped model was made)" if p.step.minutes else ""))
        else:
            log(f"{head}: `{p.command_line}`"
                + (f" (took {p.step.minutes:g} min when the shipped model was made)" if p.step.minutes else ""))
            t0 = time.monotonic()
            rc = subprocess.call([sys.executable, "-m", "emoedge", *p.argv])
            if rc != 0:
                raise RecipeError(f"{recipe.source}: step {p.step.name} failed (exit code {rc}); fix it and "
                                  f"run the recipe again with the same runs folder: finished steps are skipped")
            p.folder.mkdir(parents=True, exist_ok=True)
            (p.folder / STAMP).write_text(json.dumps({
                "recipe": recipe.model, "step": p.step.name, "command": p.command_line,
                "minutes": round((time.monotonic() - t0) / 60, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n")
        if p.step.name == until:
            log(f"stopped after {until} (--until)")
            break
    return steps
