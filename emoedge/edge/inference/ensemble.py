"""Ensembles on the device: several classifiers of any format (TFLite, ONNX, HOG+LBP) combined by
averaging, voting or stacking, behind the same ``predict`` as a single model.

An ensemble is a small JSON spec (``name.ensemble.json``)::

    {"method": "mean" | "vote" | "stack",
     "members": ["default.int8.tflite", "fast.int8.tflite", "hoglbp.hoglbp.npz"],   # relative to the spec
     "class_names": [...],
     "member_sha256": ["...", ...],                         # optional: the files the spec was made for
     "stack": {"coef": [[...]], "intercept": [...]}}        # stack only: a linear layer over the
                                                            # members' concatenated probabilities

A member file that no longer matches its recorded sha256 (a model re-shipped under the same
name) is an error for ``stack``, whose weights were fitted on the old file's outputs, and a
warning for ``mean`` and ``vote``, which still combine correctly but were scored on other files.

Members are opened once, when the ensemble is (emoedge.edge.inference.loader.open_ensemble: this module
reads and checks the spec and combines; it opens no model file); each runs on every face (the latency
is the sum).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.core.errors import ModelError

METHODS = ("mean", "vote", "stack")


def combine_mean(probs: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of the members' class probabilities."""
    return np.mean(np.stack([np.asarray(p, np.float32) for p in probs]), axis=0)


def combine_vote(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Majority vote of the members' top-1 classes, as a distribution (share of votes per class).
    Ties go to the class with the higher mean probability (a tiny bonus, it never changes a majority)."""
    p = np.stack([np.asarray(x, np.float32) for x in probs])          # (members, n, k)
    m, n, k = p.shape
    votes = np.zeros((n, k), np.float32)
    top = p.argmax(axis=2)
    for i in range(m):
        votes[np.arange(n), top[i]] += 1.0
    votes += 1e-3 * p.mean(axis=0)
    return votes / votes.sum(axis=1, keepdims=True)


def combine_stack(probs: Sequence[np.ndarray], coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Softmax of a linear layer over the members' concatenated probabilities (fitted on validation data)."""
    x = np.concatenate([np.asarray(p, np.float32) for p in probs], axis=1)
    if x.shape[1] != coef.shape[1]:
        raise ModelError(f"stacking expects {coef.shape[1]} inputs (members x classes), got {x.shape[1]}")
    z = x @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def combine(method: str, probs: Sequence[np.ndarray], stack: dict | None = None) -> np.ndarray:
    if method == "mean":
        return combine_mean(probs)
    if method == "vote":
        return combine_vote(probs)
    if method == "stack":
        if not stack:
            raise ModelError("a stacking ensemble needs its fitted 'stack' weights")
        return combine_stack(probs, np.asarray(stack["coef"], np.float32), np.asarray(stack["intercept"], np.float32))
    raise ModelError(f"unknown ensemble method {method!r}; choose one of {list(METHODS)}")


def write_spec(path: str | Path, members: Sequence[str | Path], method: str, class_names: Sequence[str],
               stack: dict | None = None) -> Path:
    """Write an ensemble spec; member paths are stored relative to the spec's folder when possible."""
    path = Path(path)
    if not path.name.endswith(".ensemble.json"):
        raise ValueError(f"{path}: an ensemble spec must be named NAME.ensemble.json")
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose one of {list(METHODS)}")
    import os

    base = path.parent.resolve()
    rel = [os.path.relpath(Path(m).resolve(), base) for m in members]
    from emoedge.core.fileio import sha256_file

    spec = {"method": method, "members": rel, "class_names": list(class_names),
            "member_sha256": [sha256_file(Path(m)) for m in members]}
    if method == "stack":
        spec["stack"] = {"coef": np.asarray(stack["coef"]).tolist(),
                         "intercept": np.asarray(stack["intercept"]).tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class EnsembleSpec:
    """An ensemble spec as read and checked (:func:`read_spec`): its members exist and, where the spec
    pins them, are the files it was made for."""
    path: Path
    method: str
    member_paths: tuple[Path, ...]
    class_names: tuple[str, ...]
    stack: dict | None


def read_spec(path: str | Path) -> EnsembleSpec:
    """Read and check ``name.ensemble.json`` (see the module); a bad one is a :class:`ModelError` naming it."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the ensemble spec: {exc}") from exc
    except ValueError as exc:
        raise ModelError(f"{path}: not JSON: {exc}") from exc
    allowed = ("method", "members", "class_names", "member_sha256", "stack")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ModelError(f"{path}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
    method = spec.get("method", "mean")
    if method not in METHODS:
        raise ModelError(f"{path}: unknown method {method!r}; choose one of {list(METHODS)}")
    if not spec.get("members"):
        raise ModelError(f"{path}: an ensemble needs at least one member")
    stack = spec.get("stack")
    if method == "stack" and not stack:
        raise ModelError(f"{path}: method 'stack' needs its fitted 'stack' weights")
    members = tuple((path.parent / m) if not Path(m).is_absolute() else Path(m) for m in spec["members"])
    pins = spec.get("member_sha256")
    if pins is not None and len(pins) != len(members):
        raise ModelError(f"{path}: {len(pins)} member_sha256 entries for {len(members)} members")
    for i, mp in enumerate(members):
        if not mp.is_file():
            raise ModelError(f"{path}: member {mp} not found")
        if pins is not None:
            _check_pin(path, method, mp, pins[i])
    return EnsembleSpec(path, method, members, tuple(spec.get("class_names") or ()), stack)


def _check_pin(path: Path, method: str, member: Path, want: str) -> None:
    from emoedge.core.fileio import sha256_file

    got = sha256_file(member)
    if got == want:
        return
    msg = (f"{path}: member {member} has sha256 {got[:12]}..., the spec was made for {want[:12]}... "
           f"(the file changed since)")
    if method == "stack":
        raise ModelError(msg + "; the stacking weights were fitted on the old file's outputs: refit with "
                               "`emoedge ensemble MEMBERS --data D --out DIR --method stack`")
    warnings.warn(msg + f"; '{method}' still combines it, but the spec's reported scores are of the old file",
                  stacklevel=4)


class EnsembleClassifier:
    """The members of a checked spec, opened by the caller (emoedge.edge.inference.loader.open_ensemble
    opens each once); ``predict`` runs each on the faces and combines their probabilities."""

    def __init__(self, spec: EnsembleSpec, members: Sequence):
        if len(members) != len(spec.member_paths):
            raise ModelError(f"{spec.path}: {len(members)} opened member(s) for {len(spec.member_paths)} in the spec")
        self.path = spec.path
        self.method = spec.method
        self.stack = spec.stack
        self.class_names = spec.class_names
        self.member_paths = list(spec.member_paths)
        self.members = list(members)
        ks = {getattr(m, "num_classes", None) for m in self.members} - {None}
        if len(ks) > 1:
            raise ModelError(f"{self.path}: members disagree on the number of classes: {sorted(ks)}")
        self.num_classes = ks.pop() if ks else len(self.class_names)
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ModelError(f"{self.path}: {len(self.class_names)} class names for {self.num_classes} outputs")
        sizes = {int(getattr(m, "input_size", 48)) for m in self.members}
        if sizes != {48}:
            raise ModelError(f"{self.path}: every member must take the 48x48 preprocessing contract's input, "
                             f"got sizes {sorted(sizes)}")
        self.input_size = 48

    def member_probs(self, faces: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(m.predict(faces), np.float32) for m in self.members]

    def predict(self, faces: np.ndarray, batch_size: int = 0) -> np.ndarray:
        return combine(self.method, self.member_probs(faces), self.stack)
