"""The training curves of a run (``curves.png``): loss, accuracy and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ep = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if key in history:
            ax.plot(ep, history[key], label="train")
        if "val_" + key in history:
            ax.plot(ep, history["val_" + key], label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend()
        else:   # epochs: 0 (a model kept as it started)
            ax.text(0.5, 0.5, "no epoch trained", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    if "learning_rate" in history:
        axes[2].plot(ep, history["learning_rate"])
        axes[2].set_title("learning rate (end of epoch)")
        axes[2].set_xlabel("epoch")
        axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
