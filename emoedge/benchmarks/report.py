"""Benchmark results as JSON (with the machine they ran on), a Markdown report with plots, and
a comparison against reference results kept per board (tolerance; missing rows reported, not fatal)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emoedge.benchmarks.machine import dirty_warning, machine_info
from emoedge.benchmarks.model_bench import ModelResult
from emoedge.benchmarks.pipeline_bench import PipelineResult
from emoedge.benchmarks.targets import evaluate_targets
from emoedge.tables import markdown_table

SCHEMA_VERSION = 1
REQUIRED = {"schema_version", "created", "machine", "models", "pipelines", "targets"}


def build_results(models: Sequence[ModelResult] = (), pipelines: Sequence[PipelineResult] = (),
                  targets: Sequence[dict] = (), settings: dict | None = None) -> dict:
    return {"schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(), "settings": settings or {},
            "models": [m.to_dict(samples=True) for m in models], "pipelines": [p.to_dict() for p in pipelines],
            "targets": list(targets)}


def carry_over(rows: Sequence[dict], prev: dict) -> list[dict]:
    """``prev``'s rows kept in a new results file, each marked as carried over with the run it came from
    (its time and git revision); a row carried before keeps its own origin."""
    origin = {"created": prev.get("created"), "git_revision": (prev.get("machine") or {}).get("git_revision")}
    return [r if r.get("carried_over") else {**r, "carried_over": origin} for r in rows]


def merge_results(out_dir: str | Path, models: Sequence[ModelResult] | None = None,
                  pipelines: Sequence[PipelineResult] | None = None, peer_name: str | None = None,
                  command: str = "") -> dict:
    """The results of a bench run merged with the ``results.json`` already in ``out_dir``: a part not
    run now (``None``) kept from it, its rows marked as carried over (:func:`carry_over`); the targets
    evaluated with ``peer_name`` as the peer when given, else kept from it."""
    path = Path(out_dir) / "results.json"
    prev = json.loads(path.read_text()) if path.is_file() else {}
    res = build_results(settings={"command": command})
    res["models"] = ([m.to_dict(samples=True) for m in models] if models is not None
                     else carry_over(prev.get("models", []), prev))
    res["pipelines"] = ([p.to_dict() for p in pipelines] if pipelines is not None
                        else carry_over(prev.get("pipelines", []), prev))
    res["targets"] = prev.get("targets", [])
    if peer_name is not None:
        res["targets"] = evaluate_targets(res, peer_name=peer_name)
    return res


def _row_name(r: dict) -> str:
    """A row's name in the report; a carried-over row says from which run."""
    c = r.get("carried_over")
    return r["name"] + (f" *(carried over from {c.get('created')}, git {c.get('git_revision')})*" if c else "")


def validate(results: dict) -> list[str]:
    """Problems with a results document (empty when it is complete)."""
    problems = [f"missing key {k!r}" for k in sorted(REQUIRED - set(results))]
    for i, m in enumerate(results.get("models", [])):
        for k in ("name", "file", "format", "status", "size_bytes"):
            if k not in m:
                problems.append(f"models[{i}] lacks {k!r}")
        if m.get("status") == "ok" and not m.get("latency"):
            problems.append(f"models[{i}] ({m.get('name')}) is ok but has no latency")
        if m.get("status") == "failed" and not m.get("reason"):
            problems.append(f"models[{i}] ({m.get('name')}) failed without a reason")
    for i, p in enumerate(results.get("pipelines", [])):
        for k in ("name", "status", "fps"):
            if k not in p:
                problems.append(f"pipelines[{i}] lacks {k!r}")
    for k in ("cpu", "cores", "python", "libraries", "git_revision"):
        if k not in results.get("machine", {}):
            problems.append(f"machine lacks {k!r}")
    return problems


def _p50(m: dict, threads: int = 1) -> float | None:
    for lat in m.get("latency") or []:
        if lat["threads"] == threads:
            return lat["p50_ms"]
    return None


def plot_latency_cdf(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for m in results["models"]:
        for lat in (m.get("latency") or [])[:1]:
            s = np.sort(np.asarray(lat.get("samples_ms") or [], dtype=float))
            if s.size:
                ax.plot(s, np.arange(1, s.size + 1) / s.size, label=f"{m['name']} ({lat['threads']} thr)")
    ax.set_xscale("log")
    ax.set_xlabel("per-face latency (ms, log scale)")
    ax.set_ylabel("fraction of runs")
    ax.set_title("latency CDF per artifact")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The Pareto frontier of (latency, accuracy, name): the points no other point beats on both."""
    best, out = -1.0, []
    for lat, acc, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            out.append((lat, acc, name))
            best = acc
    return out


def plot_accuracy_vs_latency(results: dict, path: Path) -> None:
    """Accuracy against per-face latency for every artifact, its network passes per face in the label,
    and the frontier (the models nothing else beats on both) as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    pts = []
    for m in results["models"]:
        lat = (m.get("interleaved") or {}).get("p50_ms") or _p50(m)
        if m.get("accuracy") is not None and lat is not None:
            passes = m.get("passes_per_face")
            label = m["name"] + (f" ({passes} pass{'es' if passes != 1 else ''})" if passes else "")
            ax.scatter(lat, 100 * m["accuracy"], s=30)
            ax.annotate(label, (lat, 100 * m["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            pts.append((lat, 100 * m["accuracy"], m["name"]))
    front = frontier(pts)
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.6", lw=1, ls="--",
                label="frontier")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())      # log-scale minor labels overlap
    ax.set_xlabel("per-face latency p50, 1 thread, interleaved where timed so (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy vs latency per artifact (the frontier)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_per_class(results: dict, path: Path) -> None:
    """Per-class accuracy (recall) of every scored artifact, grouped by class: float beside int8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in results["models"] if m.get("status") == "ok" and m.get("per_class_recall")]
    classes = list(rows[0]["per_class_recall"])
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(classes)), 4))
    width = 0.8 / len(rows)
    for j, m in enumerate(rows):
        ax.bar([i + (j - (len(rows) - 1) / 2) * width for i in range(len(classes))],
               [100 * m["per_class_recall"].get(c, 0.0) for c in classes], width, label=f"{m['name']} ({m['format']})")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylabel("per-class accuracy (recall, %)")
    ax.set_title("per-class accuracy per artifact")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_stage_breakdown(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [p for p in results["pipelines"] if p.get("status") == "ok" and p.get("latency")]
    stages = ["capture", "detect", "track", "preprocess", "classify", "sinks"]
    fig, ax = plt.subplots(figsize=(7, 0.6 * max(2, len(rows)) + 1.5))
    for i, p in enumerate(rows):
        left = 0.0
        lat = p["latency"]
        if "detect" not in lat:  # the naive baseline only has whole-frame times
            ax.barh(i, lat["frame"]["mean_ms"], color="gray", label="whole frame" if i == 0 else None)
            continue
        for j, s in enumerate(stages):
            v = lat.get(s, {}).get("mean_ms", 0.0)
            ax.barh(i, v, left=left, color=f"C{j}", label=s if i == 0 else None)
            left += v
    ax.set_yticks(range(len(rows)), [p["name"] for p in rows])
    ax.set_xlabel("mean time per frame (ms)")
    ax.set_title("per-stage time per frame")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_markdown(results: dict, plots: dict[str, str]) -> str:
    m = results["machine"]
    lines = ["# emoedge benchmark", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m.get('board') or m['machine']}, governor "
             f"{m.get('governor') or 'n/a'}; Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()) + f"; emoedge git {m.get('git_revision')}.",
             f"Created {results['created']}.", ""]
    warning = dirty_warning(m.get("git_revision"))
    lines += [f"**{warning}**", ""] if warning else []
    if results["models"]:
        rows = []
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        for r in results["models"]:
            if r["status"] != "ok":
                rows.append([_row_name(r), r["format"], f"**failed**: {r['reason']}", "", "",
                             f"{r['size_bytes'] / 1024:.0f}"])
                continue
            lat = "; ".join(f"{x['p50_ms']:.3f} / {x['p95_ms']:.3f} / {x['p99_ms']:.3f} ({x['threads']})"
                            for x in r["latency"])
            thr = ", ".join(f"b{k}: {v:.0f}" if isinstance(v, (int, float)) else f"b{k}: {v}"
                            for k, v in (r.get("batch_throughput_fps") or {}).items())
            rows.append([_row_name(r), r["format"], "ok", fmt(r.get("passes_per_face"), "d"),
                         fmt(r["macs_per_face"] / 1e6 if r.get("macs_per_face") else None, ".0f"),
                         f"{r['size_bytes'] / 1024:.0f}", fmt(r["load_ms"], ".1f"),
                         fmt(r["first_inference_ms"], ".2f"), lat, thr, fmt(r["peak_rss_mb"], ".0f"),
                         fmt(r["accuracy"], ".4f"), fmt(r["accuracy_loss_pts"], "+.2f"), fmt(r["agreement"], ".4f")])
        lines += ["## Models", "",
                  markdown_table(["artifact", "format", "status", "passes/face", "MMACs/face", "size (KiB)",
                                  "load (ms)", "first (ms)", "p50 / p95 / p99 ms (threads)", "batch faces/s",
                                  "peak RSS (MB)", "accuracy", "loss (pts)", "agreement"], rows,
                                 "lllrrrrrllrrrr")]
        paired = [r for r in results["models"] if r["status"] == "ok" and r.get("interleaved")]
        if paired:
            th = paired[0]["interleaved"]["threads"]
            best = min(r["interleaved"]["p50_ms"] for r in paired)
            lines += ["", "Side by side: the device models timed again round-robin "
                      f"({paired[0]['interleaved']['runs']} faces each, {th} thread(s), in blocks of 10), "
                      "so load from elsewhere falls on all alike. Compare models by these.", "",
                      markdown_table(["artifact", "passes/face", "accuracy", "p50 ms", "p95 ms", "p50 vs fastest"],
                                     [[r["name"], fmt(r.get("passes_per_face"), "d"), fmt(r.get("accuracy"), ".4f"),
                                       f"{r['interleaved']['p50_ms']:.3f}", f"{r['interleaved']['p95_ms']:.3f}",
                                       f"{r['interleaved']['p50_ms'] / best:.2f}x"]
                                      for r in sorted(paired, key=lambda r: r["interleaved"]["p50_ms"])], "lrrrrr")]
        engines = [(r["name"], r.get("engine")) for r in results["models"] if r["status"] == "ok" and r.get("engine")]
        if engines:
            lines += ["", "Engines: " + "; ".join(f"{n}: {e}" for n, e in engines) + "."]
        lines.append("")
    if results["pipelines"]:
        rows = []
        for p in results["pipelines"]:
            if p["status"] != "ok":
                rows.append([_row_name(p), f"**failed**: {p['reason']}"])
                continue
            fl = p["latency"]["frame"]
            hr = "" if p["budget_hit_rate"] is None else f"{p['budget_hit_rate']:.1%} of {p['budget_ms']:.0f} ms"
            rows.append([_row_name(p), "ok", p["detector"], p["model"], p["frames"], f"{p['fps']:.1f}",
                         f"{p['faces_per_frame']:.2f}", hr, f"{fl['p50_ms']:.1f} / {fl['p95_ms']:.1f}",
                         f"{p['cpu_s']:.1f}", f"{p['peak_rss_mb']:.0f}"])
        lines += ["## Pipelines", "",
                  markdown_table(["run", "status", "detector", "model", "frames", "FPS", "faces/frame",
                                  "budget hit rate", "frame p50 / p95 ms", "CPU s", "peak RSS (MB)"], rows,
                                 "llllrrrrlrr"), ""]
    if results["targets"]:
        lines += ["## Targets", "",
                  markdown_table(["target", "measured", "met"],
                                 [[t["target"], t["measured"], "yes" if t["met"] else f"**no** ({t.get('by', '')})"]
                                  for t in results["targets"]]), ""]
    for title, file in plots.items():
        lines += [f"![{title}]({file})", ""]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots = {}
    if any(m.get("latency") for m in results["models"]):
        plot_latency_cdf(results, out / "latency_cdf.png")
        plots["latency CDF per artifact"] = "latency_cdf.png"
        plot_accuracy_vs_latency(results, out / "accuracy_vs_latency.png")
        plots["accuracy vs latency"] = "accuracy_vs_latency.png"
    if any(m.get("per_class_recall") for m in results["models"] if m.get("status") == "ok"):
        plot_per_class(results, out / "per_class_accuracy.png")
        plots["per-class accuracy, float vs int8"] = "per_class_accuracy.png"
    if any(p.get("status") == "ok" for p in results["pipelines"]):
        plot_stage_breakdown(results, out / "stage_breakdown.png")
        plots["per-stage time breakdown"] = "stage_breakdown.png"
    (out / "report.md").write_text(render_markdown(results, plots))
    return out / "report.md"


def compare(results: dict, reference: dict, tolerance: float = 0.25) -> list[dict]:
    """Rows of this run against a reference file: latency p50 (1 thread) and FPS may be worse by
    ``tolerance`` (a fraction), accuracy by 0.5 points. Rows missing on either side are reported."""
    out = []
    ref_models = {m["name"]: m for m in reference.get("models", [])}
    for m in results.get("models", []):
        r = ref_models.pop(m["name"], None)
        if r is None:
            out.append({"kind": "model", "name": m["name"], "status": "new (no reference row)"})
            continue
        a, b = _p50(m), _p50(r)
        row = {"kind": "model", "name": m["name"], "p50_ms": a, "reference_p50_ms": b, "status": "ok"}
        if a is None or b is None:
            row["status"] = "not comparable (failed on one side)"
        elif a > b * (1 + tolerance):
            row["status"] = f"slower by {100 * (a / b - 1):.0f}%"
        if m.get("accuracy") is not None and r.get("accuracy") is not None and m["accuracy"] < r["accuracy"] - 0.005:
            row["status"] = f"less accurate by {100 * (r['accuracy'] - m['accuracy']):.2f} pts"
        out.append(row)
    for name in ref_models:
        out.append({"kind": "model", "name": name, "status": "missing in this run"})
    ref_p = {p["name"]: p for p in reference.get("pipelines", [])}
    for p in results.get("pipelines", []):
        r = ref_p.pop(p["name"], None)
        if r is None:
            out.append({"kind": "pipeline", "name": p["name"], "status": "new (no reference row)"})
            continue
        ok = p.get("fps", 0) >= r.get("fps", 0) * (1 - tolerance)
        out.append({"kind": "pipeline", "name": p["name"], "fps": p.get("fps"), "reference_fps": r.get("fps"),
                    "status": "ok" if ok else f"slower: {p.get('fps', 0):.1f} vs {r.get('fps', 0):.1f} FPS"})
    for name in ref_p:
        out.append({"kind": "pipeline", "name": name, "status": "missing in this run"})
    return out


def write_comparison(results: dict, reference: str | Path, tolerance: float, out_dir: str | Path) -> list[dict]:
    """:func:`compare` with the results file ``reference``, written to ``comparison.json`` in ``out_dir``."""
    rows = compare(results, json.loads(Path(reference).read_text()), tolerance)
    (Path(out_dir) / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows
