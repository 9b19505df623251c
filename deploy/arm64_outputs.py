"""The outputs `deploy/check-arm64.sh` compares between an arm64 root and x86: the same emoedge
commands, run in one process (one interpreter start-up: under qemu-user each start costs seconds).
The runtime runs with `runtime.adapt=false`: its latency-budget scheduler otherwise decides from
measured times what to detect and classify, and emulated arm64 is 100x slower.

    python arm64_outputs.py collect --inputs DIR --out OUT.json [--models default,fast] [--frames 20]
    python arm64_outputs.py compare A.json B.json

``collect`` runs `emoedge doctor`, `emoedge classify --json` on every photo in DIR with every model,
and `emoedge run --events` on the video in DIR, and writes the labels, probabilities and event
records (without clocks) with the package versions, and each model's int8 output tensor on fixed
crops. ``compare`` exits 0 only if the int8 output tensors are bit for bit the same, every label and
record the same, and every other number within FLOAT_TOLERANCE (the float arithmetic after the
network, e.g. numpy's exp in the softmax, may round the last bit differently on ARM and x86); it
prints the largest difference.
Only the standard library and the installed emoedge: it runs on the device side of the install.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
# what differs from run to run, not from machine to machine: clocks, ids, latencies
CLOCK_KEYS = {"run_id", "boot_id", "interval_id", "host", "pid", "duration_s", "fps", "elapsed_s", "uptime_s"}
CLOCK_SUFFIXES = ("_ns", "_utc", "_ms", "_s")
PATH_KEYS = {"model", "source"}  # install paths differ: compared by file name
FLOAT_TOLERANCE = 1e-6            # relative, on numbers after the network (float32 has ~6e-8)


def _emoedge(args: list[str]) -> tuple[int, str]:
    from emoedge.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse and refusals
            rc = exc.code if isinstance(exc.code, int) else 2
    return int(rc or 0), buf.getvalue()


def _without_clocks(obj):
    if isinstance(obj, dict):
        return {k: (Path(v).name if k in PATH_KEYS and isinstance(v, str) else _without_clocks(v))
                for k, v in obj.items()
                if k not in CLOCK_KEYS and not k.endswith(CLOCK_SUFFIXES) and "latency" not in k}
    if isinstance(obj, list):
        return [_without_clocks(v) for v in obj]
    return obj


def collect(inputs: Path, out: Path, models: list[str], frames: int) -> int:
    import platform
    from importlib import metadata

    record: dict = {"machine": platform.machine(), "python": platform.python_version(),
                    "versions": {d: metadata.version(d) for d in ("emoedge", "numpy", "opencv-python-headless",
                                                                  "ai-edge-litert", "PyYAML")
                                 if _installed(d)},
                    "classify": {}, "run": {}}
    record["raw"] = raw_outputs(inputs, models)
    rc, text = _emoedge(["doctor"])
    record["doctor"] = {"exit_code": rc, "output": text}
    print(text, end="")
    photos = sorted(p for p in inputs.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    videos = sorted(inputs.glob("*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for photo in photos:
                js = Path(tmp) / f"{model}-{photo.stem}.json"
                rc, _ = _emoedge(["classify", "--model", model, "--image", str(photo), "--json", str(js)])
                record["classify"][f"{model}/{photo.name}"] = (
                    json.loads(js.read_text()) if rc == 0 and js.is_file() else {"exit_code": rc})
                print(f"classify {model} {photo.name}: exit {rc}", flush=True)
            for video in videos:
                ev = Path(tmp) / f"{model}-{video.stem}.jsonl"
                summ = Path(tmp) / f"{model}-{video.stem}.summary.json"
                rc, _ = _emoedge(["run", "--model", model, "--source", str(video), "--max-frames", str(frames),
                                  "--events", str(ev), "--summary-json", str(summ), "--set", "runtime.adapt=false"])
                events = [json.loads(line) for line in ev.read_text().splitlines() if line.strip()] \
                    if ev.is_file() else []
                summary = json.loads(summ.read_text()) if summ.is_file() else {}
                record["run"][f"{model}/{video.name}"] = {
                    "exit_code": rc, "events": _without_clocks(events),
                    "summary": {k: summary.get(k) for k in ("frames", "faces_seen", "classifications", "labels",
                                                            "detections", "exit_code")}}
                print(f"run {model} {video.name}: exit {rc}, {len(events)} event records", flush=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


def raw_outputs(inputs: Path, models: list[str]) -> dict:
    """Each model's probabilities, unrounded, on fixed 48x48 crops (the centre square of every photo,
    through the one preprocessing function): their sha256 (bit for bit) and the values."""
    import hashlib

    import cv2
    import numpy as np

    from emoedge.core.preprocess import preprocess_face
    from emoedge.core.shipped import resolve_model
    from emoedge.edge.inference.classify import FaceClassifier

    crops = []
    for photo in sorted(p for p in inputs.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        gray = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
        h, w = gray.shape
        s = min(h, w)
        crops.append(gray[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
    batch = np.stack([preprocess_face(c) for c in crops])
    from emoedge.core.preprocess import quantize

    out = {}
    for model in models:
        clf = FaceClassifier(resolve_model(model))
        m = clf.model  # the interpreter's own int8 output tensor, before any float arithmetic
        m._resize(len(batch))
        m.interpreter.set_tensor(m.input.index, quantize(batch, m.input.scale, m.input.zero_point, m.input.dtype))
        m.interpreter.invoke()
        q = np.array(m.interpreter.get_tensor(m.output.index))
        probs = np.asarray(clf.predict(batch), dtype=np.float32)
        out[model] = {"int8_sha256": hashlib.sha256(q.tobytes()).hexdigest(), "int8": q.tolist(),
                      "probs": probs.tolist()}
    return out


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def _leaves(obj, path=""):
    """(path, value) for every leaf of obj (dict keys sorted), in a stable order."""
    if isinstance(obj, dict):
        for k in sorted(obj):
            yield from _leaves(obj[k], f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(obj):
    return [(p, float(v)) for p, v in _leaves(obj) if _is_number(v)]


def _strings(obj):
    return [(p, v) for p, v in _leaves(obj) if not _is_number(v)]


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    print(f"{a_path.name}: {a['machine']} python {a['python']} {a['versions']}")
    print(f"{b_path.name}: {b['machine']} python {b['python']} {b['versions']}")
    problems = []
    checked = 0
    largest = 0.0
    for model in a["raw"]:
        if a["raw"][model]["int8_sha256"] != b["raw"].get(model, {}).get("int8_sha256"):
            problems.append(f"raw {model}: the int8 output tensors differ")
    for section in ("raw", "classify", "run"):
        if set(a[section]) != set(b[section]):
            problems.append(f"{section}: different items: {sorted(set(a[section]) ^ set(b[section]))}")
        for key in sorted(set(a[section]) & set(b[section])):
            na, nb = list(_numbers(a[section][key])), list(_numbers(b[section][key]))
            sa, sb = list(_strings(a[section][key])), list(_strings(b[section][key]))
            if [p for p, _ in na] != [p for p, _ in nb] or sa != sb:
                diff = [(x, y) for x, y in zip(sa, sb) if x != y][:3]
                problems.append(f"{section} {key}: different labels or records, e.g. {diff or 'in their shape'}")
                continue
            diffs = [abs(x - y) / max(1.0, abs(x)) for (_, x), (_, y) in zip(na, nb)]
            worst = max(diffs, default=0.0)
            largest = max(largest, worst)
            checked += len(na)
            if worst > FLOAT_TOLERANCE:
                problems.append(f"{section} {key}: numbers differ, largest difference {worst:.3g}")
    for p in problems:
        print("MISMATCH " + p)
    same_raw = all(a["raw"][m]["int8_sha256"] == b["raw"].get(m, {}).get("int8_sha256") for m in a["raw"])
    print(f"int8 output tensors of {len(a['raw'])} models on {len(next(iter(a['raw'].values()))['int8'])} crops: "
          f"{'bit for bit the same' if same_raw else 'DIFFERENT'}; {checked} numbers and every label compared "
          f"in those, {len(a['classify'])} classifications and {len(a['run'])} runs: largest relative difference "
          f"{largest:.2g} (tolerance {FLOAT_TOLERANCE:g}): "
          + ("match" if not problems else f"{len(problems)} mismatches"))
    return 0 if not problems else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="run the commands and write their outputs")
    c.add_argument("--inputs", type=Path, required=True, help="folder with the photos and the video")
    c.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    c.add_argument("--models", default="default,fast,ferplus8", help="shipped models (default: default,fast,ferplus8)")
    c.add_argument("--frames", type=int, default=20, help="frames of the video to run (default: 20)")
    k = sub.add_parser("compare", help="compare two outputs (exit 0: identical)")
    k.add_argument("a", type=Path)
    k.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        return collect(args.inputs, args.out, [m for m in args.models.split(",") if m], args.frames)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
