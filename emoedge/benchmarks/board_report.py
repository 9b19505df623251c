"""What ``emoedge bench board`` writes: the stage times as CSV and JSON (measured on a board:
``board.*``; estimated: ``estimates.*``) and the estimates' derivation as a Markdown page."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["board", "stage", "ms", "threads", "method", "derivation"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "ms": f"{r['ms']:.2f}"})
    return path


def write_measured(result: dict, out: Path) -> Path:
    """A board's measured times (:func:`emoedge.benchmarks.board_measure.measure`) as ``board.json`` and
    ``board.csv`` in ``out``; returns the CSV's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "board.json").write_text(json.dumps(result, indent=2) + "\n")
    return write_csv(result["rows"], out / "board.csv")


def write_estimates_md(result: dict, out: Path) -> Path:
    """The derivation as a page: anchors, the reference workloads here, factors, estimates."""
    r = result
    lines = ["# Per-board stage times: estimates from published runs", "",
             f"Derived {r['date']} on {r['machine']['cpu']} ({r['machine']['cores']} cores) by "
             "`emoedge bench board --estimate --out docs/benchmarks/pi-timings`; method: "
             "`emoedge/benchmarks/board_timings.py`. A board of one's own replaces them: "
             "`emoedge bench board --write-profile firmware_configs/NAME.yaml` on the board.", "",
             "## Published reference runs (anchors)", "", "| workload | board | threads | ms | what | source |",
             "|---|---|---:|---:|---|---|"]
    for a in r["anchors"]:
        lines.append(f"| {a['workload']} | {a['board']} | {a['threads']} | {a['ms']} | {a['detail']} | {a['source']} |")
    lines += ["", "## The same workloads here (1 thread) and the factors", "",
              "| workload | here (ms) | Pi 4 (ms) | factor |", "|---|---:|---:|---:|"]
    pi4 = {a["workload"]: a["ms"] for a in r["anchors"] if a["board"] == "rpi4"}
    for k, ms in r["reference_here_ms"].items():
        lines.append(f"| {k} | {ms:.1f} | {pi4[k]} | {r['factors'][k]:.2f} |")
    lines += ["", "Cross-check from the Haar anchor's own study (same Pi 4, OpenCV, 320x320, 1 thread, "
              "against an i7-1255U laptop): Haar 362 vs 100 ms (3.6x), the YuNet CNN 56 vs 6.2 ms (9.0x): a Pi "
              "loses more on CNNs than on cascades against an x86 core, as the two factors above say.", "",
              "Board ratios to a Pi 4 (CNN reference): " + ", ".join(
        f"{b} {v:.2f}" for b, v in r["board_ratios"].items()) + ". Haar on the Zero 2 W: scaled by its "
              "320x240 detection frame's pixels (x 0.333); the CNN detectors resize to their fixed input.", "",
              "## Estimates (ms: detectors per 640x360 frame at full scale, classifiers per face)", ""]
    stages = list(r["stages_here_ms"])
    lines += ["| stage | MACs (M) | here, 1 thread | " + " | ".join(r["board_ratios"]) + " |",
              "|---|---:|---:|" + "---:|" * len(r["board_ratios"])]
    est = {(x["board"], x["stage"]): x["ms"] for x in r["rows"]}
    for s in stages:
        macs = r["macs"].get(s)
        lines.append(f"| {s} | {macs / 1e6:.1f} | {r['stages_here_ms'][s]:.2f} | " if macs else
                     f"| {s} | - | {r['stages_here_ms'][s]:.2f} | ")
        lines[-1] += " | ".join(f"{est[(b, s)]:.1f}" for b in r["board_ratios"]) + " |"
    if r.get("skipped"):
        lines += ["", "Not timed: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items())]
    lines += ["", "## What this assumes (why a board's own run replaces it)", "",
              "- Our networks spread over a Pi's 4 threads as well as the 300x300 reference does; a 48x48 "
              "classifier spreads less, so its estimate is optimistic (a single face may take up to ~3x longer).",
              "- The CNN reference is timed here without its SSD box heads (backbone only): the factor is a "
              "little high, the estimates a little slow.",
              "- The Pi 4 CNN anchor is 2019 TFLite without XNNPACK int8; LiteRT today is faster on the same "
              "board: estimates on the slow side. The Pi 5 anchor is 2023 TFLite: the Pi 5 ratio flatters it.",
              "- The SSD detector runs in OpenCV DNN (float), scaled with the int8 TFLite factor.",
              "- Zero 2 W and the Coral Dev Board's CPU: the Pi 3B+ run scaled by clock (same Cortex-A53 cores).",
              ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "estimates.json").write_text(json.dumps(r, indent=2) + "\n")
    write_csv(r["rows"], out / "estimates.csv")
    md = out / "estimates.md"
    md.write_text("\n".join(lines))
    return md
