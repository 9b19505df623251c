"""Model cards generated from a training run's record and its evaluations (never hand-written)."""

from __future__ import annotations

from pathlib import Path

from emoedge.convert.card_text import DATA_FACTS as DATA_FACTS
from emoedge.convert.card_text import PRIVACY_SECTION, USES_SECTION
from emoedge.convert.lineage import lineage as lineage  # re-exported: the steps a card lists
from emoedge.core.shipped import SHIPPED
from emoedge.recipes import Recipe, card_commands
from emoedge.tables import markdown_table

# The model card's front matter (YAML between ``---`` lines, read by model hubs): fixed fields.
LICENSE = "mit"                 # the project's (pyproject.toml); the data's own terms are in "## Data"
LIBRARY_NAME = "emoedge"        # what runs every shipped format: `emoedge run --model NAME`
DATASET_ID = "fer2013"

# The model files a card lists: the files beside it whose names end so (manifests, records, recipes are not models).
MODEL_SUFFIXES = (".tflite", ".onnx", ".keras", ".npz")


def shipped_files(models_dir: str | Path, name: str) -> dict[str, int]:
    """{file name: size in bytes} of ``name``'s model files in ``models_dir``: what its card lists."""
    return {p.name: p.stat().st_size for p in sorted(Path(models_dir).glob(f"{name}.*"))
            if p.is_file() and p.suffix in MODEL_SUFFIXES}


def headline_file(files, evaluated: str) -> str:
    """The file a card's headline scores: the shipped int8 TFLite when there is one (what the device
    runs), else ``evaluated`` (the file the evaluation is of: a HOG+LBP file, a float-only shipment)."""
    return next((f for f in files if str(f).endswith(".int8.tflite")), evaluated)


def card_tags(files) -> list[str]:
    """The hub tags of a card from its file names: what it is, then its formats, then ``edge``."""
    names = [str(f) for f in files]
    tags = ["emotion-recognition"]
    tags += [t for t, hit in (("tflite", any(n.endswith(".tflite") for n in names)),
                              ("onnx", any(n.endswith(".onnx") for n in names)),
                              ("int8", any(".int8." in n or ".uint8." in n for n in names))) if hit]
    return tags + ["edge"]


def data_facts(data_format: str | None) -> dict:
    """What a card says about a dataset, by its format (``fer2013-csv``, ``ferplus``; others: nothing known)."""
    key = {"fer2013-csv": "fer2013"}.get(str(data_format), str(data_format))
    return DATA_FACTS.get(key) or {"id": "custom", "name": "the dataset",
                                   "problems": "- Known problems of the data: not recorded for this dataset."}


def front_matter(name: str, test_eval: dict, files, data_format: str = "fer2013") -> str:
    """The card's front matter: license, datasets, metrics (top-1 accuracy on the test split, with
    its value, as a ``model-index`` entry), pipeline_tag, tags, library_name; ``---`` lines around."""
    split = test_eval.get("split") or "PublicTest"
    facts = data_facts(data_format)
    meta = {
        "license": LICENSE,
        "library_name": LIBRARY_NAME,
        "pipeline_tag": "image-classification",
        "tags": card_tags(files),
        "datasets": [facts["id"]],
        "metrics": ["accuracy"],
        "model-index": [{
            "name": name,
            "results": [{
                "task": {"type": "image-classification", "name": "Facial expression recognition"},
                "dataset": {"type": facts["id"], "name": facts["name"], "split": split},
                "metrics": [{"type": "accuracy",
                             "name": f"Top-1 accuracy on {facts['name']} {split} (n={test_eval['n']})",
                             "value": round(float(test_eval["accuracy"]), 4)}],
            }],
        }],
    }
    return _dump_front_matter(meta)


def _dump_front_matter(meta: dict) -> str:
    import yaml

    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def read_front_matter(text: str) -> dict:
    """The front matter of a card's text, parsed (``{}`` if it has none)."""
    import yaml

    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("the front matter has no closing --- line")
    return yaml.safe_load(text[4:end + 1]) or {}


def _files_line(files: dict[str, int]) -> str:
    return "- Files: " + (", ".join(f"`{f}` ({s / 1024:.0f} KiB)" for f, s in files.items()) or "none") + "."


def _headline(ev: dict) -> str:
    return (f"- **Top-1 accuracy {ev['accuracy']:.2%}**, macro-F1 {ev['macro_f1']:.4f} "
            f"(n={ev['n']}; model `{Path(ev['model']).name}`).")


def _per_class_table(ev: dict) -> str:
    return markdown_table(["class", "precision", "recall", "F1", "support"],
                          [[name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", c["support"]]
                           for name in ev["class_names"] for c in [ev["per_class"][name]]], "lrrrr")


def _confusion_table(ev: dict) -> str:
    names = ev["class_names"]
    return markdown_table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, ev["confusion_matrix"])],
                          "l" + "r" * len(names))


def _cli(command: str) -> str:
    """``/path/to/venv/bin/emoedge train ...`` -> ``emoedge train ...`` (the console script, wherever installed)."""
    head, _, rest = command.partition(" ")
    return f"emoedge {rest}" if Path(head).name == "emoedge" else command


def _commands(steps: list[dict], ship_command: str) -> list[str]:
    lines = ["- Made by these commands, in order (earlier runs first; minutes of training of each):", ""]
    for i, st in enumerate(steps, 1):
        if st.get("shipped"):
            lines.append(f"  {i}. the shipped `{st['shipped']}` model, its float master rebuilt from its int8 file "
                         f"(its card, `{st['shipped']}.md`, lists how it was made)")
            continue
        what = f"`{_cli(st['command'])}`" if st["command"] else f"(no run.json in {st['run']})"
        lines.append(f"  {i}. {what} " + (f"({st['seconds'] / 60:.0f} min, {st['epochs']} epochs)" if st["seconds"]
                                          else "(a fusion: no training of its own)"))
    lines += [f"  {len(steps) + 1}. `{_cli(ship_command)}` (shipping: conversion, evaluation, calibration)", ""]
    return lines


RECIPE_HEAD = "- Reproduce it with one command,"
RECIPE_TAIL = "- The commands as they were run are recorded in each run's `run.json`"


def _recipe_commands(recipe: Recipe) -> list[str]:
    """The Training section's command list, from the model's recipe (what ``--recipe`` runs)."""
    lines = [f"{RECIPE_HEAD} `emoedge train --recipe {recipe.model} --data DATA --out RUNS` "
             f"(DATA: {recipe.data or 'the dataset'}; resumable: run it again after an interruption), which runs "
             f"these steps of its recipe (`{recipe.source.name}`), in order (minutes when this model was made):", ""]
    for i, (step, cmd) in enumerate(zip(recipe.steps, card_commands(recipe)), 1):
        lines.append(f"  {i}. `{cmd}`" + (f" ({step.minutes:g} min)" if step.minutes else
                                          f" ({step.note})" if step.note else ""))
    lines += ["", f"{RECIPE_TAIL} (this model's: `{recipe.model}.run.json`)."]
    return lines


def _model_ref(spec: str) -> str:
    """A model a training config names, for a card: a shipped name as such (its float master), a file as
    its folder and name (the run it came from)."""
    if spec in SHIPPED:
        return f"the shipped `{spec}` (its float master)"
    return f"`{Path(spec).parent.name}/{Path(spec).name}`"


def _neural_best(run: dict, cfg: dict) -> str:
    """A network's validation line: its best epoch, a fine-tune's start kept, or each fused member's."""
    if run.get("members"):
        return "- Each member alone (validation / PublicTest accuracy, single pass): " + "; ".join(
            f"`{Path(m['model']).parent.name}` {m['val_accuracy']:.2%} / "
            + (f"{m['test_accuracy']:.2%}" if m.get("test_accuracy") is not None else "-")
            + f" after {m['epochs_run']} epochs" + (" (continued from the previous)" if m.get("init_from") else "")
            for m in run["members"]) + "."
    if run["best_epoch"] == 0:   # a fine-tune's start kept (epochs: 0, or no epoch beat it)
        return (f"- Validation accuracy {run['val']['accuracy']:.2%}: the model `{cfg.get('init_from')}` names, "
                "kept as it started (" + ("no epoch trained" if not run["epochs_run"] else
                                          f"none of its {run['epochs_run']} epochs beat it") + ").")
    return (f"- Best validation accuracy {run['val']['accuracy']:.2%} at epoch {run['best_epoch']} of "
            f"{run['epochs_run']}.")


def _neural_settings(cfg: dict) -> str:
    """A network's training settings line."""
    return (f"- Settings: {cfg['epochs']} epochs max, batch {cfg['batch_size']}, "
            f"Adam lr {cfg['learning_rate']} "
            f"({cfg['schedule']} schedule, {cfg['warmup_epochs']} warm-up epoch), label smoothing "
            f"{cfg['label_smoothing']}, class balance `{cfg['class_balance']}`, augmentation "
            f"{', '.join(f'{k}={v_}' for k, v_ in cfg['augment'].items())}; seed {cfg['seed']}; oneDNN "
            f"{'on' if cfg.get('onednn') else 'off'}, "
            f"{'bfloat16' if cfg.get('mixed_precision') else 'float32'} compute; exported in float32."
            + (f" Distilled from {_model_ref(cfg['soft_targets_from'])} (weight {cfg['soft_weight']}, "
               f"T={cfg['soft_temperature']})." if cfg.get("soft_targets_from") else "")
            + (f" Started from the weights of {_model_ref(cfg['init_from'])}." if cfg.get("init_from") else ""))


def _neural_lines(run: dict, cfg: dict, steps: list[dict] | None) -> tuple[str, str, str, str]:
    """A network's architecture, validation, time and settings lines."""
    arch_line = (f"- Architecture: `{cfg['arch']}` {cfg.get('arch_kwargs') or ''}, {run['params']:,} parameters; "
                 f"input 48x48x1 float32 in [0, 1] (`{run['preprocessing']['name']}` preprocessing contract), "
                 f"output softmax over {len(run['class_names'])} classes: {', '.join(run['class_names'])}.")
    minutes = (sum(st["seconds"] for st in steps) if steps else run["train_seconds"]) / 60
    epochs = sum(st["epochs"] for st in steps) if steps else run["epochs_run"]
    time_line = (f"- Time on this machine (2 x86 cores, no GPU): {minutes:.0f} min of training, "
                 f"{epochs} epochs in all.")
    return arch_line, _neural_best(run, cfg), time_line, _neural_settings(cfg)


def _handcrafted_lines(run: dict, cfg: dict) -> tuple[str, str, str, str]:
    """A handcrafted (HOG+LBP) model's architecture, validation, time and settings lines."""
    arch_line = (f"- Architecture: `{cfg['arch']}`: {cfg.get('features', 'handcrafted features')}, standardized, "
                 f"then a linear classifier; {run.get('params', 0):,} parameters; input the same 48x48 grayscale "
                 f"crop (`{run['preprocessing']['name']}` preprocessing contract); output softmax over "
                 f"{len(run['class_names'])} classes: {', '.join(run['class_names'])}.")
    return (arch_line, f"- Validation accuracy {run['val']['accuracy']:.2%}.",
            f"- Time on this machine (2 x86 cores, no GPU): {run['train_seconds']:.0f} s.",
            f"- Settings: regularization C={cfg.get('C')}, class balance `{cfg.get('class_balance')}`, "
            f"seed {cfg.get('seed')}.")


def _data_section(run: dict, cfg: dict, test_eval: dict, facts: dict) -> list[str]:
    dname = facts["name"]
    return [
        "## Data",
        f"- Trained on {dname} `Training` only ({run['data']['train_items']:,} faces after carving a stratified "
        f"{cfg['val_fraction']:.0%} validation set of {run['data']['val_items']:,} from it); tested on {dname} "
        f"`{test_eval.get('split') or 'PublicTest'}` ({test_eval['n']:,} faces), which training never saw.",
        f"- Data fingerprint (sha256 of pixels+labels+class names): `{run['data']['fingerprint_sha256'][:16]}...`.",
        facts["problems"],
    ]


def _results_section(test_eval: dict, dname: str, best: str) -> list[str]:
    return [f"## Results on {dname} {test_eval.get('split') or 'PublicTest'}", _headline(test_eval), best, "",
            _per_class_table(test_eval), "", "Confusion matrix (rows: true class):", "", _confusion_table(test_eval)]


def _training_section(steps: list[dict] | None, command: str, recipe: Recipe | None, time_line: str, settings: str,
                      versions: dict) -> list[str]:
    return ["## Training",
            *(_commands(steps, command) if steps else [f"- Command: `{_cli(command)}`"]),
            *(_recipe_commands(recipe) if recipe else []),
            time_line,
            settings,
            "- Versions: " + ", ".join(f"{k} {val}" for k, val in versions.items()) + "."]


def render_model_card(name: str, purpose: str, run: dict, test_eval: dict, files: dict[str, int],
                      command: str, extra_sections: dict[str, str] | None = None,
                      steps: list[dict] | None = None, data_format: str = "fer2013",
                      recipe: Recipe | None = None) -> str:
    """Markdown model card. ``run`` is a training run.json, ``test_eval`` an evaluation dict,
    ``files`` {file name: size in bytes}, ``steps`` the run's :func:`lineage` (the commands that
    made it, with their times) if known; ``data_format`` the dataset's (``fer2013``, ``ferplus``: what the
    card says about the data); ``recipe`` the model's recipe, whose commands the card lists."""
    cfg = run["config"]
    facts = data_facts(data_format)
    neural = "epochs" in cfg     # else a handcrafted (HOG+LBP) model
    arch_line, best, time_line, settings = _neural_lines(run, cfg, steps) if neural else _handcrafted_lines(run, cfg)
    lines = [
        front_matter(name, test_eval, files, data_format),
        f"# Model card: `{name}`",
        "",
        "*Generated by `emoedge.convert.modelcard` from the training record and the evaluation; do not edit by hand.*",
        "",
        f"**Purpose:** {purpose}",
        "",
        "## Model",
        arch_line,
        *([f"- Fusion: {run['fusion']}"] if run.get("fusion") else []),
        _files_line(files),
        "",
        *_data_section(run, cfg, test_eval, facts),
        "",
        *_results_section(test_eval, facts["name"], best),
        "",
        *_training_section(steps, command, recipe, time_line, settings, run.get("versions") or {}),
        "",
        *USES_SECTION,
        "",
        *PRIVACY_SECTION,
    ]
    for title, body in (extra_sections or {}).items():
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def with_recipe_commands(card: str, recipe: Recipe) -> str:
    """A card's text with its recipe's commands in the Training section (before the ``- Time on this
    machine`` line), replacing those it had: for cards rendered before recipes or before a recipe changed."""
    lines = card.split("\n")
    if "## Training" not in lines:
        raise ValueError("the card has no '## Training' section")
    start = lines.index("## Training") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("- Time on this machine")), None)
    if end is None:
        raise ValueError("the card's Training section has no '- Time on this machine' line")
    section = lines[start:end]
    if any(ln.startswith(RECIPE_HEAD) for ln in section):
        a = next(i for i, ln in enumerate(section) if ln.startswith(RECIPE_HEAD))
        b = next(i for i, ln in enumerate(section) if ln.startswith(RECIPE_TAIL))
        section = section[:a] + section[b + 1:]
    return "\n".join(lines[:start] + section + _recipe_commands(recipe) + lines[end:])


# -- cards kept true to the folder they are in ------------------------------------------------------------------
def _body(card: str) -> str:
    """A card's text below its front matter (all of it if it has none)."""
    end = card.find("\n---\n", 4) if card.startswith("---\n") else -1
    return card[end + 5:] if end >= 0 else card


def _replace_block(lines: list[str], starts: str, new: list[str], one_line: bool = False) -> list[str]:
    """``lines`` with the block from the line starting with ``starts`` to the next blank line (or that
    line alone) replaced by ``new``."""
    i = next((k for k, ln in enumerate(lines) if ln.startswith(starts)), None)
    if i is None:
        raise ValueError(f"the card has no line starting with {starts!r}")
    j = i + 1 if one_line else next((k for k in range(i, len(lines)) if not lines[k].strip()), len(lines))
    return lines[:i] + new + lines[j:]


def _replace_line(lines: list[str], starts: str, new: str) -> list[str]:
    return _replace_block(lines, starts, [new], one_line=True)


def with_files(card: str, files: dict[str, int]) -> str:
    """A card's text with its file list and its front matter's tags from ``files``."""
    meta = read_front_matter(card)
    meta["tags"] = card_tags(files)
    lines = _replace_line(_body(card).split("\n"), "- Files: ", _files_line(files))
    return _dump_front_matter(meta) + "\n".join(lines)


def with_results(card: str, name: str, test_eval: dict, files: dict[str, int], data_format: str = "fer2013") -> str:
    """A card's text with its front matter, file list, headline and result tables (per class,
    confusion) from ``files`` and ``test_eval``; the rest unchanged (lineage, quantization, calibration)."""
    lines = _replace_line(_body(card).split("\n"), "- Files: ", _files_line(files))
    lines = _replace_line(lines, "- **Top-1 accuracy ", _headline(test_eval))
    lines = _replace_block(lines, "| class | precision |", _per_class_table(test_eval).split("\n"))
    lines = _replace_block(lines, "| true \\ predicted |", _confusion_table(test_eval).split("\n"))
    return front_matter(name, test_eval, files, data_format) + "\n".join(lines)


def evaluation_record(model: str | Path, dataset, usage: str) -> dict:
    """An evaluation of ``model`` on ``usage``, as a card and NAME.eval.json record it."""
    from emoedge.evaluate import evaluate_model

    ev = evaluate_model(model, dataset, usage=usage)
    return {"model": Path(model).name, "data": Path(dataset.source).name, "split": usage, **ev.evaluation.to_dict()}


def headline_evaluation(models_dir: str | Path, files, evaluated: dict, dataset, usage: str) -> dict:
    """The evaluation a card's headline states: ``evaluated`` if it is of the headline file
    (:func:`headline_file`), else the headline file's own."""
    head = headline_file(files, Path(evaluated["model"]).name)
    return evaluated if head == Path(evaluated["model"]).name else evaluation_record(Path(models_dir) / head,
                                                                                      dataset, usage)


def refresh_card(models_dir: str | Path, name: str, dataset, usage: str = "PublicTest") -> dict:
    """Rewrite ``name``'s card in ``models_dir`` true to the folder, without retraining: the file list
    from the files beside it, the headline, front matter and result tables from an evaluation of the
    headline file (the shipped int8 file) on ``usage``. Only the card is written. Returns the evaluation."""
    models_dir = Path(models_dir)
    card, files = models_dir / f"{name}.md", shipped_files(models_dir, name)
    if not card.is_file() or not files:
        raise FileNotFoundError(f"{models_dir}: no card and model files of {name!r} to refresh")
    ev = evaluation_record(models_dir / headline_file(files, next(iter(files))), dataset, usage)
    card.write_text(with_results(card.read_text(), name, ev, files, dataset.meta.get("format") or "fer2013"))
    return ev
