"""Training configurations from YAML: a shipped one (``emoedge/train/configs/NAME.yaml``) or a file,
with ``--set key=value`` overrides in the same grammar as device profiles
(:func:`emoedge.edge.runtime.config.parse_override`: dotted keys nest, values are YAML).

TensorFlow is not imported here: a config is read (and ``onednn`` known) before it loads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emoedge.core.errors import BadInputError
from emoedge.edge.runtime.config import parse_override
from emoedge.train.config import TrainConfig

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the training configs shipped with the package (``default``, ``fast``, ...)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def config_path(spec: str | Path) -> Path:
    """A YAML file, or the shipped config of that name; FileNotFoundError naming both otherwise."""
    path = Path(spec)
    if not path.exists():
        path = CONFIGS_DIR / f"{spec}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: training config not found (a YAML file or one of {shipped_configs()})")
    return path


def config_dict(spec: str | Path | None = "default", overrides: Sequence[str] = ()) -> dict:
    """The mapping of a training config (``spec``; None: the TrainConfig defaults) with ``overrides``
    (``key=value``, ``augment.flip=false``) applied."""
    from emoedge.core.safeyaml import load_yaml_text

    d: dict = {}
    if spec:
        path = config_path(spec)
        d = load_yaml_text(path.read_text(), str(path), BadInputError) or {}
        if not isinstance(d, dict):
            raise BadInputError(f"{path}: a training config must be a YAML mapping")
    for ov in overrides:
        keys, value = parse_override(ov)
        target = d
        for part in keys[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise BadInputError(f"override {ov!r}: {part!r} is not a mapping")
        target[keys[-1]] = value
    return d


def load_train_config(spec: str | Path | None = "default", overrides: Sequence[str] = ()) -> TrainConfig:
    """The :class:`TrainConfig` of a shipped name or YAML file, with ``--set`` overrides; ValueError
    naming the config for an unknown option or a bad value, FileNotFoundError for a missing one."""
    d = config_dict(spec, overrides)
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{spec or 'training config'}: {exc}") from exc
