"""The deployment class prior: logit adjustment on the device, one add per face.

A classifier's probabilities carry the class mix it was trained on (its manifest's ``class_mix``,
e.g. FER+ Training: neutral 39%, disgust 0.5%). Where the faces in front of the camera come in another
mix, Bayes' rule moves every face's log-probabilities by ``log(deployed share) - log(trained share)``
per class and renormalises (Menon et al. 2021, "Long-tail learning via logit adjustment"):

* ``model`` (the default): the setting the model ships with (its manifest's ``class_prior``, chosen on
  validation when it was shipped: e.g. ``balanced`` at strength 0.25); ``trained`` for a model without one;
* ``trained``: nothing moves; the model's own mix, the best accuracy on faces drawn like its training
  faces (most faces calm or happy);
* ``balanced``: every class equally likely; rare classes (disgust, fear) are called more often, calm
  faces less: the best mean recall per class, at a cost in accuracy where calm faces dominate;
* a file of shares (YAML or JSON: ``{class: share}``, every class of the model, shares > 0; they are
  normalised): the mix measured where the box stands.

``strength`` scales the move (0: none, 1: the full move), for a setting between two mixes. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emoedge.core.errors import BadInputError

PRIOR_NAMES = ("model", "trained", "balanced")
MAX_PRIOR_FILE_BYTES = 64 * 1024   # a file of a few shares; anything larger is not one


def is_prior_name(spec: str) -> bool:
    return spec in PRIOR_NAMES


def trained_mix(manifest: Mapping | None, class_names: Sequence[str]) -> np.ndarray | None:
    """The shares of the model's training mix in ``class_names`` order, from its manifest's
    ``class_mix.trained``; None if the manifest does not record one (an older or foreign model)."""
    mix = (manifest or {}).get("class_mix", {})
    shares = mix.get("trained") if isinstance(mix, Mapping) else None
    if not isinstance(shares, Mapping):
        return None
    return _shares_vector(shares, class_names, "the manifest's class_mix.trained")


def _shares_vector(shares: Mapping, class_names: Sequence[str], where: str) -> np.ndarray:
    """``shares`` as a normalised vector in ``class_names`` order; BadInputError naming ``where``
    for a missing or extra class, a share that is not a finite number > 0."""
    missing = [c for c in class_names if c not in shares]
    extra = sorted(str(c) for c in shares if c not in class_names)
    if missing or extra:
        raise BadInputError(f"{where}: the shares must name exactly the model's classes {list(class_names)}"
                            + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
    values = []
    for c in class_names:
        v = shares[c]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise BadInputError(f"{where}: the share of {c!r} must be a finite number > 0, got {v!r}")
        values.append(float(v))
    vec = np.asarray(values, dtype=np.float64)
    return vec / vec.sum()


def read_prior_file(path: str | Path, class_names: Sequence[str]) -> np.ndarray:
    """The shares of a prior file (YAML or JSON mapping class -> share), checked and normalised."""
    from emoedge.core.safeyaml import load_yaml_text

    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_PRIOR_FILE_BYTES:
            raise BadInputError(f"{p}: class prior file of {size} bytes (at most {MAX_PRIOR_FILE_BYTES})")
        raw = load_yaml_text(p.read_text(encoding="utf-8"), f"{p} (a class prior file)", BadInputError)
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{p}: cannot read the class prior file: {exc}") from None
    if not isinstance(raw, dict):
        raise BadInputError(f"{p}: a class prior file is a mapping of class -> share, got {type(raw).__name__}")
    return _shares_vector(raw, class_names, str(p))


def prior_shift(spec: str, manifest: Mapping | None, class_names: Sequence[str], strength: float = 1.0,
                model: str = "the model") -> np.ndarray | None:
    """The per-class log shift for the deployment prior ``spec`` (``trained``, ``balanced`` or a file),
    scaled by ``strength``; None when nothing moves. BadInputError when a prior other than ``trained``
    is asked of a model whose manifest records no training mix. ``model``: the manifest's own setting
    (its ``class_prior``: prior and strength; ``strength`` is not used), else none."""
    if spec == "model":
        own = (manifest or {}).get("class_prior")
        if not isinstance(own, Mapping) or own.get("prior") not in ("trained", "balanced"):
            return None
        spec, strength = str(own["prior"]), float(own.get("strength", 1.0))
        if not 0 <= strength <= 1:
            raise BadInputError(f"{model}: its manifest's class_prior strength must be in 0..1, got {strength}")
    if spec == "trained" or strength == 0:
        return None
    mix = trained_mix(manifest, class_names)
    if mix is None:
        raise BadInputError(f"{model}: class_prior {spec!r} needs the model's training class mix (class_mix in "
                            "its manifest), which it does not record; use class_prior: trained")
    target = np.full(len(class_names), 1.0 / len(class_names)) if spec == "balanced" else \
        read_prior_file(spec, class_names)
    return (strength * (np.log(target) - np.log(mix))).astype(np.float32)


def apply_prior(probs: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """Class probabilities (N, k) moved by a log ``shift`` (k,) and renormalised; as they are for None."""
    if shift is None:
        return probs
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float32), 1e-12, None)) + shift
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    return e / e.sum(axis=-1, keepdims=True)


def describe(spec: str, strength: float = 1.0) -> str:
    """A short phrase for logs and run summaries."""
    base = spec if is_prior_name(spec) else f"file {spec}"
    return base if strength == 1.0 or spec == "trained" else f"{base} x {strength:g}"


def mix_record(counts: Mapping[str, int], weights: Mapping[str, float] | None, weighting: str,
               source: str) -> dict:
    """The ``class_mix`` entry of a manifest: training counts, the per-class loss weights, and the mix the
    model learned (counts x weights, normalised: the ``trained`` prior)."""
    w = {c: float((weights or {}).get(c, 1.0)) for c in counts}
    mass = {c: max(int(counts[c]), 1) * w[c] for c in counts}   # a class without faces: as if it had one
    total = sum(mass.values())
    trained = {c: mass[c] / total for c in counts}
    return {"trained": trained, "counts": {c: int(n) for c, n in counts.items()}, "weighting": weighting,
            "source": source, "meaning": "the class shares the model's probabilities assume (training counts "
                                         "x per-class loss weights); runtime.class_prior moves from them"}

