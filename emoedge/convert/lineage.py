"""The lineage of a training run: every run that went into its model, parents first (what a model
card's Training section lists, :mod:`emoedge.convert.modelcard`)."""

from __future__ import annotations

import json
from pathlib import Path

from emoedge.core.shipped import SHIPPED


def lineage(run_dir: str | Path) -> list[dict]:
    """Every run that went into ``run_dir``'s model, parents first: the run it continued from
    (``init_from``), its teacher (``soft_targets_from``), a fusion's members, recursively. Each
    step: ``run`` (folder), ``command``, ``seconds`` of training of its own (0 for a fusion) and
    ``epochs``; a parent whose run.json is missing is a step with ``command`` None."""
    out: list[dict] = []
    seen: set[str] = set()

    def visit(d: Path) -> None:
        key = str(d.resolve())
        if key in seen:
            return
        seen.add(key)
        rj = d / "run.json"
        if not rj.is_file():
            out.append({"run": str(d), "command": None, "seconds": 0.0, "epochs": 0})
            return
        r = json.loads(rj.read_text())
        cfg = r.get("config") or {}
        members = r.get("members") or []
        parents = [Path(m["model"]).parent for m in members]
        if not members:
            for k in ("init_from", "soft_targets_from"):
                if cfg.get(k) in SHIPPED:  # a shipped model by name: its own card tells its lineage
                    if f"shipped:{cfg[k]}" not in seen:
                        seen.add(f"shipped:{cfg[k]}")
                        out.append({"run": f"shipped:{cfg[k]}", "command": None, "seconds": 0.0, "epochs": 0,
                                    "shipped": cfg[k]})
                elif cfg.get(k):
                    parents.append(Path(cfg[k]).parent)
        for q in parents:
            visit(q)
        out.append({"run": str(d), "command": r.get("command"),
                    "seconds": 0.0 if members else float(r.get("train_seconds") or 0.0),
                    "epochs": 0 if members else int(r.get("epochs_run") or 0)})

    visit(Path(run_dir))
    return out
