"""Model benchmark: for each artifact, status, size, load and first-inference time, per-face
latency percentiles per thread count, batched throughput, peak RSS of a process that runs only
that model, and accuracy / macro-F1 / loss against the float model / top-1 agreement."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emoedge.benchmarks.classifiers import ClassifierSpec, class_names_of, describe_engine, open_runner
from emoedge.benchmarks.timing import summary, time_call, time_calls
from emoedge.metrics import evaluate_predictions


@dataclass(frozen=True)
class LatencyStats:
    threads: int
    runs: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    samples_ms: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ModelResult:
    name: str
    file: str
    format: str
    status: str                          # ok | failed
    reason: str = ""
    size_bytes: int = 0
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency: tuple[LatencyStats, ...] = ()
    batch_throughput_fps: dict | None = None     # {batch size: faces per second}
    peak_rss_mb: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    accuracy_loss_pts: float | None = None       # float model's accuracy minus this one's, in points
    agreement: float | None = None               # top-1 agreement with the float model
    n_eval: int = 0
    per_class_recall: dict | None = None         # {class: recall (per-class accuracy)} on the labelled split
    engine: str = ""                             # interpreter, delegate, threads of the first thread count
    interleaved: LatencyStats | None = None      # timed round-robin with every other model (fair under load)
    passes_per_face: int | None = None           # network passes per face (views x members)
    macs_per_face: int | None = None             # multiply-accumulates per face (TFLite graphs: emoedge.core.macs)

    def to_dict(self, samples: bool = False) -> dict:
        d = asdict(self)
        for lat in list(d["latency"]) + ([d["interleaved"]] if d.get("interleaved") else []):
            if not samples:
                lat.pop("samples_ms", None)
            else:
                lat["samples_ms"] = list(lat["samples_ms"])
        return d


def _stem(spec: ClassifierSpec) -> str:
    from emoedge.core.formats import stem_of

    try:
        return stem_of(spec.path)
    except ValueError:
        return Path(spec.path).stem


def _format_name(path: str) -> str:
    from emoedge.core.formats import format_of

    try:
        return format_of(path).name
    except ValueError:
        return Path(path).suffix.lstrip(".") or "?"


def latency_stats(threads: int, samples_ms: Sequence[float]) -> LatencyStats:
    s = summary(samples_ms)
    return LatencyStats(threads, len(samples_ms), s["p50_ms"], s["p95_ms"], s["p99_ms"], s["mean_ms"],
                        tuple(samples_ms))


def peak_rss_mb(spec: ClassifierSpec, runs: int = 100, timeout_s: float = 300) -> float:
    """Peak RSS of a fresh process that loads only this model and classifies ``runs`` faces."""
    code = ("import json, sys, numpy as np\n"
            "from emoedge.benchmarks.classifiers import ClassifierSpec, open_runner\n"
            "from emoedge.benchmarks.machine import peak_rss_mb\n"
            "spec = ClassifierSpec(**json.loads(sys.argv[1]))\n"
            "r = open_runner(spec, 1)\n"
            "x = spec.prepare(np.zeros((1, 48, 48), np.uint8))\n"
            f"for _ in range({runs}): r.predict(x)\n"
            "print(peak_rss_mb())\n")
    args = json.dumps({k: v for k, v in asdict(spec).items() if k != "class_names"})
    r = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        reason = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode
        raise RuntimeError(f"RSS probe failed: {reason}")
    return float(r.stdout.strip().splitlines()[-1])


def _passes_and_macs(path: Path) -> tuple[int | None, int | None]:
    """From the model's manifest when it records them, else counted on a TFLite graph; (None, None)
    for a format that cannot be counted here (ONNX or Keras without a manifest, the Edge TPU's)."""
    from emoedge.core.shipped import read_manifest

    m = read_manifest(path) or {}
    if "passes_per_face" in m:
        return m["passes_per_face"], m.get("macs_per_face")
    if path.suffix == ".tflite" and "edgetpu" not in path.name:
        from emoedge.core.macs import passes_per_face, tflite_macs

        return passes_per_face(path), tflite_macs(path)
    return None, None


def bench_model(spec: ClassifierSpec, faces48: np.ndarray | None = None, labels: np.ndarray | None = None,
                class_names: Sequence[str] | None = None, reference_probs: np.ndarray | None = None,
                reference_accuracy: float | None = None, threads: Sequence[int] = (1,), runs: int = 300,
                warmup: int = 30, batches: Sequence[int] = (8, 32),
                rss: bool = True) -> tuple[ModelResult, np.ndarray | None]:
    """Benchmark one classifier. A failure at any step is recorded with its reason, not raised.
    Returns the result and the class probabilities on ``faces48`` (for the float reference)."""
    name, path = spec.label, Path(spec.path)
    fmt = _format_name(spec.path)
    size = path.stat().st_size if path.is_file() else 0
    try:
        runner, load_ms = time_call(open_runner, spec, threads[0])
        x1 = spec.prepare(faces48[:1] if faces48 is not None and len(faces48) else np.zeros((1, 48, 48), np.uint8))
        _, first_ms = time_call(runner.predict, x1)
        lats = []
        for th in threads:
            r = runner if th == threads[0] else open_runner(spec, th)
            lats.append(latency_stats(th, time_calls(lambda r=r: r.predict(x1), runs, warmup)))
        thr = {}
        for b in batches:
            xb = np.repeat(x1, b, axis=0)
            try:
                n_rep = max(3, runs // (4 * b))
                s = time_calls(lambda xb=xb: runner.predict(xb), n_rep, warmup=1)
                thr[str(b)] = b * n_rep / (sum(s) / 1e3)
            except Exception as exc:  # a back-end without batching: recorded, not fatal
                thr[str(b)] = f"failed: {exc}"
        probs = acc = f1 = loss = agree = recall = None
        n = 0
        if faces48 is not None and labels is not None:
            names = tuple(class_names or class_names_of(spec))
            probs = runner.predict(spec.prepare(faces48))
            if probs.shape[1] != len(names):
                raise ValueError(f"outputs {probs.shape[1]} classes, the labels have {len(names)}")
            ev = evaluate_predictions(labels, probs, names)
            acc, f1, n = ev.accuracy, ev.macro_f1, ev.n
            recall = {c.name: c.recall for c in ev.per_class}
            if reference_accuracy is not None:
                loss = 100 * (reference_accuracy - acc)
            if reference_probs is not None:
                agree = float((probs.argmax(1) == reference_probs.argmax(1)).mean())
        peak = peak_rss_mb(spec) if rss else None
        passes, macs = _passes_and_macs(path)
        return ModelResult(name, str(path), fmt, "ok", "", size, load_ms, first_ms, tuple(lats), thr, peak, acc, f1,
                           loss, agree, n, recall, describe_engine(runner), None, passes, macs), probs
    except Exception as exc:  # every failure becomes a row with its reason
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return ModelResult(name, str(path), fmt, "failed", f"{type(exc).__name__}: {msg}", size), None


def bench_models(specs: Sequence[ClassifierSpec], faces48=None, labels=None, class_names=None,
                 reference: str | None = None, interleave: bool = True, **kw) -> list[ModelResult]:
    """Benchmark several; ``reference`` (a spec path/label) is the float model for loss and agreement
    (default: the first spec in float32 or keras format). A model whose stem has a float model of its
    own in the run (``fast.int8.tflite`` and ``fast.tflite``) is compared with that one instead.
    With ``interleave`` the device models are then timed once more round-robin (``interleaved``), the
    latency that models are compared by."""
    order = list(specs)
    ref = None
    if reference:
        ref = next((s for s in order if reference in (s.path, s.label)), None)
    if ref is None:
        ref = next((s for s in order if _format_name(s.path) in ("float32", "keras")), None)
    # one float reference per model family (stem), the asked-for reference first
    refs = [ref] if ref is not None else []
    stems = [_stem(s) for s in order]
    for s in order:
        if _format_name(s.path) in ("float32", "keras") and stems.count(_stem(s)) > 1 \
                and _stem(s) not in {_stem(r) for r in refs}:
            refs.append(s)
    results: dict[int, ModelResult] = {}
    ref_out: dict[str, tuple] = {}
    for rs in refs:
        i = order.index(rs)
        r, probs = bench_model(rs, faces48, labels, class_names, **kw)
        if probs is not None:
            r = dataclasses.replace(r, accuracy_loss_pts=0.0, agreement=1.0)
        results[i] = r
        ref_out[_stem(rs)] = (probs, r.accuracy)
    default_ref = ref_out.get(_stem(ref), (None, None)) if ref is not None else (None, None)
    for i, s in enumerate(order):
        if i not in results:
            probs, acc = ref_out.get(_stem(s), default_ref)
            results[i], _ = bench_model(s, faces48, labels, class_names, probs, acc, **kw)
    ok = [i for i in range(len(order)) if results[i].status == "ok"]
    if interleave and len(ok) > 1:
        threads = kw.get("threads", (1,))[0]
        lat = interleaved_latency([order[i] for i in ok], faces48, threads=threads, runs=kw.get("runs", 300),
                                  warmup=kw.get("warmup", 30))
        for i in ok:
            if order[i].label in lat:
                results[i] = dataclasses.replace(results[i], interleaved=lat[order[i].label])
    return [results[i] for i in range(len(order))]


def interleaved_latency(specs: Sequence[ClassifierSpec], faces48: np.ndarray | None = None, threads: int = 1,
                        runs: int = 300, warmup: int = 30, block: int = 10) -> dict[str, LatencyStats]:
    """Per-face latency of several models timed round-robin, ``block`` calls at a time, so a change
    in machine load (other processes, CPU steal on a VM) falls on every model alike: the numbers to
    compare models by. Keras models are left out (their latency is not a device number); a model
    that fails to open here is left out too (its own row already says why)."""
    runners = []
    for s in specs:
        if _format_name(s.path) == "keras":
            continue
        try:
            r = open_runner(s, threads)
            x1 = s.prepare(faces48[:1] if faces48 is not None and len(faces48) else np.zeros((1, 48, 48), np.uint8))
            time_calls(lambda r=r, x1=x1: r.predict(x1), 0, warmup)
        except Exception:  # noqa: BLE001  (recorded in the model's own row)
            continue
        runners.append((s.label, r, x1))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in runners}
    for _ in range(max(1, runs // block)):
        for label, r, x1 in runners:
            samples[label] += time_calls(lambda r=r, x1=x1: r.predict(x1), block)
    return {label: latency_stats(threads, s) for label, s in samples.items()}
