"""Data inspection: counts per class and split, blank images, exact duplicates (and the ones
that leak across splits), skipped files, a class-distribution plot and a sample grid."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emoedge.data.faces import FaceDataset, Skipped


@dataclass(frozen=True)
class DuplicateGroup:
    ids: tuple[str, ...]
    splits: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def crosses_splits(self) -> bool:
        return len(set(self.splits)) > 1

    @property
    def conflicting_labels(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass(frozen=True)
class InspectionReport:
    source: str
    n: int
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    blank: tuple[str, ...]                  # ids of constant images
    duplicate_groups: tuple[DuplicateGroup, ...]
    skipped: tuple[Skipped, ...]

    @property
    def cross_split_groups(self) -> tuple[DuplicateGroup, ...]:
        return tuple(g for g in self.duplicate_groups if g.crosses_splits)

    def summary(self) -> dict:
        dup_items = sum(len(g.ids) for g in self.duplicate_groups)
        return {
            "source": self.source, "n": self.n, "class_names": list(self.class_names), "counts": self.counts,
            "blank_images": len(self.blank), "duplicate_groups": len(self.duplicate_groups),
            "duplicate_items": dup_items,
            "cross_split_duplicate_groups": len(self.cross_split_groups),
            "cross_split_duplicate_items": sum(len(g.ids) for g in self.cross_split_groups),
            "duplicate_groups_with_conflicting_labels": sum(g.conflicting_labels for g in self.duplicate_groups),
            "skipped": len(self.skipped),
        }

    def to_dict(self) -> dict:
        d = self.summary()
        d["blank"] = list(self.blank)
        d["duplicates"] = [asdict(g) | {"crosses_splits": g.crosses_splits} for g in self.duplicate_groups]
        d["skipped_items"] = [asdict(s) for s in self.skipped]
        return d

    def text(self) -> str:
        s = self.summary()
        splits = list(self.counts)
        w = max(10, max(len(c) for c in self.class_names))
        lines = [f"{self.source}: {self.n} images, {len(self.class_names)} classes",
                 f"{'class':<{w}}" + "".join(f"{sp:>12}" for sp in splits)]
        rows = list(self.class_names) + (["(no label)"] if any("(no label)" in c for c in self.counts.values()) else [])
        for c in rows:
            lines.append(f"{c:<{w}}" + "".join(f"{self.counts[sp].get(c, 0):>12}" for sp in splits))
        lines.append(f"{'total':<{w}}" + "".join(f"{sum(self.counts[sp].values()):>12}" for sp in splits))
        lines.append(f"blank (constant) images: {s['blank_images']}"
                     + (f"  e.g. {', '.join(self.blank[:5])}" if self.blank else ""))
        lines.append(f"exact duplicates: {s['duplicate_groups']} groups, {s['duplicate_items']} items; "
                     f"{s['duplicate_groups_with_conflicting_labels']} groups with conflicting labels")
        lines.append(f"cross-split duplicates (leaks): {s['cross_split_duplicate_groups']} groups, "
                     f"{s['cross_split_duplicate_items']} items")
        for g in self.cross_split_groups[:5]:
            lines.append("  " + ", ".join(f"{i} ({sp}, {lab})" for i, sp, lab in zip(g.ids, g.splits, g.labels)))
        lines.append(f"skipped (unreadable or wrongly sized): {len(self.skipped)}")
        for sk in self.skipped[:10]:
            lines.append(f"  {sk.where}: {sk.reason}")
        return "\n".join(lines)


def _label_name(ds: FaceDataset, lab: int) -> str:
    return ds.class_names[lab] if lab >= 0 else "(no label)"


def inspect(ds: FaceDataset) -> InspectionReport:
    flat = ds.images.reshape(len(ds), -1)
    blank_mask = flat.max(axis=1) == flat.min(axis=1)
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, row in enumerate(flat):
        groups[hashlib.blake2b(row.tobytes(), digest_size=16).digest()].append(i)
    dups = tuple(
        DuplicateGroup(tuple(str(ds.ids[i]) for i in v), tuple(str(ds.splits[i]) for i in v),
                       tuple(_label_name(ds, int(ds.labels[i])) for i in v))
        for v in groups.values() if len(v) > 1)
    return InspectionReport(ds.source, len(ds), ds.class_names, ds.counts(),
                            tuple(str(i) for i in ds.ids[blank_mask]), dups, ds.skipped)


def plot_distribution(report: InspectionReport, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(report.counts)
    k = len(report.class_names)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * k + 2), 4))
    width = 0.8 / max(1, len(splits))
    for j, sp in enumerate(splits):
        vals = [report.counts[sp].get(c, 0) for c in report.class_names]
        bars = ax.bar(np.arange(k) + j * width - 0.4 + width / 2, vals, width, label=sp)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(k), report.class_names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title(f"class distribution: {Path(report.source).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(ds: FaceDataset, path: str | Path, per_class: int = 8, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    k = ds.num_classes
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 1.0 + 0.3), squeeze=False)
    for i, c in enumerate(ds.class_names):
        idx = np.flatnonzero(ds.labels == i)
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        for j in range(per_class):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(pick):
                ax.imshow(ds.images[pick[j]], cmap="gray", vmin=0, vmax=255)
        axes[i][0].text(-4, 24, c, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.15, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(ds: FaceDataset, report: InspectionReport, out_dir: str | Path, plots: bool = True) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inspect.json").write_text(json.dumps(report.to_dict(), indent=2))
    (out / "inspect.txt").write_text(report.text() + "\n")
    if plots:
        plot_distribution(report, out / "class_distribution.png")
        plot_samples(ds, out / "samples.png")
    return out
