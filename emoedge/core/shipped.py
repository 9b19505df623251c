"""The models shipped with the package (``edge/models/``) and their manifests."""

from __future__ import annotations

import json
from pathlib import Path

from emoedge.core.errors import ModelError, brief
from emoedge.core.formats import get_format

MODELS_DIR = Path(__file__).resolve().parents[1] / "edge" / "models"   # the files stay where they shipped
# What each shipped name is for.
SHIPPED = {"default": ("accuracy first (two VGG-style CNNs, snapshots of one training run, one of them a weight "
                       "average of two; weighted 1:0.5, each averaged over 4 views of the face)"),
           "fast": ("the quickest CNN (the default's CNN without its full-resolution second conv, one pass; "
                    "~20% quicker than onepass, 2.4 points less accurate)"),
           "hoglbp": "very low power, no neural network (HOG + LBP features, linear classifier, numpy only)",
           "onepass": ("one network pass per face at nearly the default's accuracy: the default's first network alone, "
                       "one view (for boards where 8 passes per face do not fit the frame budget)"),
           "ferplus8": ("the FER+ 8 classes with contempt (the Microe paper's set): the default's first network "
                        "fine-tuned on the crowd's vote distributions, one pass"),
           "ferplus7": ("field accuracy first: FER2013's 7 classes labelled by the crowd (FER+ votes), one network "
                        "pass per face; what the bare `emoedge run`, `emoedge classify` and every profile use")}
# What runs when no model is named (the bare `emoedge run`, `emoedge classify`, the profiles' base).
DEFAULT_MODEL = "ferplus7"


def shipped_models() -> dict[str, list[str]]:
    """{name: [files]} of the models present in the package."""
    out: dict[str, list[str]] = {}
    for name in SHIPPED:
        files = sorted(p.name for p in MODELS_DIR.glob(f"{name}.*") if p.is_file())
        if any(not f.endswith(".recipe.yaml") for f in files):  # a recipe alone is not a model
            out[name] = files
    return out


def resolve_model(spec: str | Path, fmt: str = "int8") -> Path:
    """A shipped model name (``default``, ``fast``) in a format, or a path to a model file."""
    s = str(spec)
    if s in SHIPPED:
        path = MODELS_DIR / f"{s}{get_format(fmt).suffix}"
        if not path.is_file():
            have = shipped_models().get(s, [])
            raise ModelError(f"{path}: the shipped model {s!r} has no {fmt} file (present: {have or 'none'})")
        return path
    path = Path(s)
    try:
        found = path.is_file()
    except OSError as exc:                    # a name too long for the file system, a bad path
        raise ModelError(f"{brief(s, 80)}: not a model file ({exc.strerror or exc})") from None
    if not found:
        raise ModelError(f"{s if len(s) <= 200 else brief(s, 200)}: model file not found (and not a shipped model "
                         f"name: {sorted(SHIPPED)})")
    return path


def manifest_path(model_path: str | Path) -> Path:
    """The manifest beside a model file: ``name.int8.tflite`` -> ``name.int8.tflite.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def read_manifest(model_path: str | Path) -> dict | None:
    mp = manifest_path(model_path)
    if not mp.is_file():
        return None
    try:
        return json.loads(mp.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{mp}: unreadable model manifest: {exc}") from exc
