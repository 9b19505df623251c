"""The ``emoedge`` command. Each subcommand is a thin shell over a Python function:

    emoedge data inspect DATA        -> emoedge.data.inspect.inspect / write_report
    emoedge train --data D ...       -> emoedge.train.trainer.train
    emoedge evaluate --model M ...   -> emoedge.evaluate.evaluate_model
    emoedge ensemble A B --flip ...  -> emoedge.train.ensemble.fuse_files
    emoedge convert --model M ...    -> emoedge.convert.pipeline.convert_model (+ convert.report)
    emoedge classify [--image I]     -> emoedge.edge.classify.classify_image
    emoedge run --source S ...       -> emoedge.edge.pipeline.Pipeline(config).run()
    emoedge models list              -> emoedge.edge.models.shipped_models
    emoedge models fetch NAME        -> emoedge.edge.fetch.fetch

TensorFlow is imported only by the subcommands that need it (train, convert, Keras models).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _dataset(args):
    from emoedge.data.datasets import load_dataset, select_classes

    ds = load_dataset(args.data, labels=args.labels, votes=getattr(args, "votes", None))
    keep = [c for c in args.classes.split(",") if c] if getattr(args, "classes", None) else None
    rename = dict(kv.split("=", 1) for kv in args.rename.split(",") if kv) if getattr(args, "rename", None) else None
    if keep or rename:
        ds = select_classes(ds, keep, rename)
    return ds


def _add_data_args(p, required=True):
    p.add_argument("--data", required=required,
                   help="FER2013 .csv/.csv.gz, or a folder tree root/<split>/<class>/*.png or root/<class>/*")
    p.add_argument("--labels", default="auto", choices=["auto", "fer2013", "ferplus"],
                   help="label set of a FER2013 CSV: its own 7 classes, or the FER+ 8-class majority votes")
    p.add_argument("--votes", help="FER+ votes file (default: fer2013new.csv beside the CSV)")
    p.add_argument("--classes", help="keep only these classes, comma-separated, in this order")
    p.add_argument("--rename", help="rename/merge classes: old=new,old2=new")


def cmd_data_inspect(args) -> int:
    from emoedge.data.inspect import inspect, write_report

    args.data = args.data_path
    ds = _dataset(args)
    report = inspect(ds)
    print(report.text())
    if args.out:
        out = write_report(ds, report, args.out, plots=not args.no_plots)
        print(f"wrote {out}/inspect.json" + ("" if args.no_plots else ", class_distribution.png, samples.png"))
    return 0


def _load_train_config(spec: str | None, overrides: list[str]):
    import yaml

    from emoedge.train.trainer import TrainConfig

    d: dict = {}
    if spec:
        path = Path(spec)
        if not path.exists():
            path = Path(__file__).resolve().parent / "train" / "configs" / f"{spec}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{spec}: training config not found (a YAML file or one of "
                                    f"{sorted(p.stem for p in (Path(__file__).parent / 'train' / 'configs').glob('*.yaml'))})")
        d = yaml.safe_load(path.read_text()) or {}
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping")
    for ov in overrides:
        if "=" not in ov:
            raise ValueError(f"--set expects key=value, got {ov!r}")
        key, val = ov.split("=", 1)
        target = d
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(val)
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{spec or 'training config'}: {exc}") from exc


def cmd_train(args) -> int:
    import os

    config = _load_train_config(args.config, args.set or [])
    if config.onednn:  # must be set before TensorFlow is imported
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    ds = _dataset(args)
    if config.arch == "hog_lbp":  # the handcrafted baseline: scikit-learn, same outputs and reports
        from emoedge.train.handcrafted import train_hoglbp

        rec = train_hoglbp(ds, args.out, val_fraction=config.val_fraction, seed=config.seed,
                           max_train_items=config.max_train_items, class_balance=config.class_balance)
        print(f"HOG+LBP baseline in {rec['train_seconds']:.0f} s: validation accuracy {rec['val']['accuracy']:.4f}"
              + (f", test accuracy {rec['test']['accuracy']:.4f}" if "test" in rec else ""))
        print(f"wrote {args.out}/model.hoglbp.npz and run.json")
        return 0
    from emoedge.train.trainer import train

    result = train(config, ds, args.out)
    print(f"best epoch {result.best_epoch}/{result.epochs_run}, {result.train_seconds / 60:.1f} min")
    print(f"validation: accuracy {result.val.accuracy:.4f}, macro-F1 {result.val.macro_f1:.4f}")
    if result.test is not None:
        print("test:\n" + result.test.table())
    print(f"wrote {result.out_dir}/ (model.keras, run.json, history.json, curves.png)")
    return 0


def cmd_evaluate(args) -> int:
    from emoedge.edge.models import resolve_model
    from emoedge.evaluate import evaluate_model, write_evaluation

    model = resolve_model(args.model, args.format)
    ds = _dataset(args)
    run = evaluate_model(model, ds, usage=args.usage, num_threads=args.threads)
    print(f"{model} on {ds.source} [{run.split}]")
    print(run.evaluation.table())
    if args.json:
        write_evaluation(run, args.json, plot=not args.no_plots)
        print(f"wrote {args.json}")
    return 0


def cmd_convert(args) -> int:
    from emoedge.convert.calibration import load_calibration
    from emoedge.convert.pipeline import convert_model, write_summary
    from emoedge.edge.formats import FORMATS
    from emoedge.evaluate import model_class_names

    formats = [f.strip() for f in args.to.split(",") if f.strip()]
    if formats == ["all"]:
        formats = [f for f, v in FORMATS.items() if v.converted and f != "keras"]
    cal = None
    if args.calib:
        cal = load_calibration(args.calib, size=args.calib_size, labels=args.labels)
        print(f"calibration: {len(cal)} faces from {cal.source} (fingerprint {cal.fingerprint[:12]}), "
              f"per class {cal.counts()}")
    names = args.class_names.split(",") if args.class_names else model_class_names(args.model)
    if not names and cal is not None and cal.class_names:
        names = cal.class_names
        print(f"class names: {', '.join(names)} (no manifest beside {args.model}; taken from the calibration data)")
    if not names:
        raise ValueError(f"{args.model}: no manifest with class names beside it; pass --class-names")
    out_dir = Path(args.out)
    results = convert_model(args.model, formats, out_dir, names, cal, stem=args.stem)
    for r in results:
        print(f"  {r.format:10s} {r.status:8s} {'' if r.path is None else r.path}"
              f"{'' if not r.size_bytes else f' ({r.size_bytes / 1024:.0f} KiB)'} {r.message}")
    write_summary(results, out_dir)
    if args.report:
        from emoedge.convert.report import quantization_report

        if not args.data:
            raise ValueError("--report needs --data (a labelled dataset) to score the artifacts on")
        from emoedge.data.datasets import load_dataset

        ds = load_dataset(args.data, labels=args.labels)
        arts = [r.path for r in results if r.status == "ok" and r.path is not None and r.format != "keras"]
        rep = quantization_report(args.model, arts, ds, args.usage, out_dir, cal, layers=cal is not None,
                                  selective=args.selective)
        print((out_dir / "quantization_report.md").read_text())
        print(f"wrote {out_dir}/quantization_report.json, .md and per_class_accuracy.png")
        del rep
    failed = [r for r in results if r.status == "failed"]
    return 1 if failed else 0


def cmd_classify(args) -> int:
    import cv2

    from emoedge.edge.classify import FaceClassifier, demo_image

    image = demo_image() if args.image is None else cv2.imread(str(args.image))
    if image is None:
        raise FileNotFoundError(f"{args.image}: not a readable image")
    clf = FaceClassifier.from_spec(args.model, fmt=args.format, num_threads=args.threads)
    preds = clf.classify_image(image)
    src = "demo image (matplotlib's grace_hopper.jpg)" if args.image is None else str(args.image)
    print(f"{src}: {len(preds)} face(s), model {clf.model_path.name}")
    for p in preds:
        top = sorted(zip(clf.class_names, p.probs), key=lambda t: -t[1])[:3]
        print(f"  box={p.face.box} label={p.label} confidence={p.confidence:.2f} "
              f"top3={', '.join(f'{c} {v:.2f}' for c, v in top)}")
    if args.json:
        Path(args.json).write_text(json.dumps([p.to_dict() for p in preds], indent=2))
    if args.out:
        cv2.imwrite(str(args.out), clf.draw(image, preds))
        print(f"wrote {args.out}")
    return 0


def cmd_calibrate(args) -> int:
    from emoedge.calibrate import calibrate

    ds = _dataset(args)
    r = calibrate(args.model, ds, usage=args.usage, out_dir=args.out, write_to=args.also or [])
    print(f"{r['model']}: temperature {r['temperature']:.3f} fitted on {r['split']} (n={r['n']}); "
          f"ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f}")
    return 0


def cmd_explain(args) -> int:
    import cv2

    from emoedge.explain import attention_maps, explain_grid, grad_cam, overlay
    from emoedge.train.keras_io import load_keras

    model = load_keras(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.image:
        from emoedge.edge.detect import HaarDetector
        from emoedge.edge.preprocess import preprocess_faces

        img = cv2.imread(str(args.image))
        if img is None:
            raise FileNotFoundError(f"{args.image}: not a readable image")
        faces = HaarDetector().detect(img)
        if not faces:
            print(f"{args.image}: no face found")
            return 1
        x = preprocess_faces(img, [f.box for f in faces])
        cams = grad_cam(model, x)
        att = attention_maps(model, x)
        for i in range(len(faces)):
            cv2.imwrite(str(out / f"face{i}_gradcam.png"), overlay(x[i], cams[i]))
            for name, maps in att.items():
                cv2.imwrite(str(out / f"face{i}_{name}.png"), overlay(x[i], maps[i]))
        print(f"wrote Grad-CAM overlays of {len(faces)} face(s) to {out}")
        return 0
    if not args.data:
        raise ValueError("give --image or --data")
    from emoedge.evaluate import select_split

    ds = select_split(_dataset(args), args.usage)
    path = explain_grid(model, ds.images, ds.labels, ds.class_names, out / "gradcam_grid.png", args.per_class)
    print(f"wrote {path}")
    # a CBAM model: where each attention block looks, on the same faces
    for layer in [l.name for l in model.layers if l.name.endswith("_spatial")]:
        path = explain_grid(model, ds.images, ds.labels, ds.class_names, out / f"attention_{layer}.png",
                            args.per_class, attention=layer)
        print(f"wrote {path}")
    return 0


def cmd_ensemble(args) -> int:
    if not str(args.out).endswith(".keras"):
        return _cmd_device_ensemble(args)
    bad = [m for m in args.models if not str(m).endswith((".keras", ".h5", ".hdf5"))]
    if bad:
        raise ValueError(f"{bad[0]}: a fused .keras ensemble takes Keras members only; for TFLite/ONNX/HOG+LBP "
                         f"members give --out a folder (a device ensemble spec per --method)")
    from emoedge.train.ensemble import fuse_files

    if args.average and not args.data:
        raise ValueError("--average re-estimates BatchNorm on the members' training faces: give --data")
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    ds = _dataset(args) if args.data else None
    out = fuse_files(args.models, args.out, flip=args.flip, zoom_px=args.zoom, average=args.average,
                     dataset=ds, weights=weights, mean=args.mean)
    print(f"wrote {out}: {'weight average' if args.average else 'mean'}"
          f"{' of the scores before the softmax' if args.mean == 'logits' else ''} of {len(args.models)} model(s)"
          f"{' and their mirrored views' if args.flip else ''}"
          f"{f' and centre crops ({args.zoom} px in, scaled back)' if args.zoom else ''}")
    if args.data:
        from emoedge.train.ensemble import compare_members

        rows = compare_members(args.models, out, ds, args.usage)
        print("| model | role | accuracy | macro-F1 | ms/face (float TFLite, 1 thread) |\n|---|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['role']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                  f"{r['latency_ms_per_face']:.3f} |")
        Path(out).with_suffix(".members.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _cmd_device_ensemble(args) -> int:
    """Members of any format -> NAME-METHOD.ensemble.json specs (+ a report against the members with --data)."""
    from emoedge.edge.ensemble import METHODS, write_spec
    from emoedge.evaluate import model_class_names

    methods = [m.strip() for m in args.method.split(",") if m.strip()] if args.method else list(METHODS)
    if args.flip or args.zoom:
        raise ValueError("--flip/--zoom fuse Keras members into one .keras model: give --out NAME.keras")
    if args.data:
        from emoedge.ensembles import evaluate_ensembles

        res = evaluate_ensembles(args.models, _dataset(args), args.usage, methods, args.out, args.name,
                                 num_threads=args.threads)
        from emoedge.ensembles import render_markdown

        print(render_markdown(res))
        print(f"wrote {args.out}/ensembles.json, ensembles.md and {len(res['specs'])} ensemble spec(s)")
        return 0
    if "stack" in methods:
        raise ValueError("stacking is fitted on the validation split: give --data (or --method mean,vote)")
    names = model_class_names(args.models[0])
    if not names and not str(args.models[0]).endswith(".keras"):
        from emoedge.edge.classify import open_model

        names = getattr(open_model(args.models[0]), "class_names", None)
    if not names:
        raise ValueError(f"{args.models[0]}: no class names (no manifest beside it)")
    for m in methods:
        print("wrote", write_spec(Path(args.out) / f"{args.name}-{m}.ensemble.json", args.models, m, names))
    return 0


def cmd_run(args) -> int:
    import dataclasses

    from emoedge.edge.config import ConfigError, RuntimeConfig, load_yaml
    from emoedge.edge.pipeline import Pipeline

    _log_to_stderr()
    deployment = None
    base = RuntimeConfig.from_dict(load_yaml(args.config), str(args.config)) if args.config else RuntimeConfig()
    where = str(args.config) if args.config else "defaults"
    if getattr(args, "profile", None):
        from emoedge.edge.profiles import load_profile

        prof = load_profile(args.profile, overrides=args.set or [])
        base, deployment, where = prof.runtime, prof.deployment, prof.path
    elif args.set:
        raise ConfigError("--set overrides a profile's values: give --profile (or use the matching flag)")
    overrides = {}
    for f in dataclasses.fields(RuntimeConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            overrides[f.name] = v
    try:  # the same checks (ranges, the profile's privacy rule) as for the profile itself
        config = base.replace(**overrides)
    except ConfigError as exc:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in overrides)
        raise ConfigError(f"{where} with command-line {flags}: {exc}") from None
    print(f"emoedge run: source {config.source}, model {config.model} ({config.model_format}), detector "
          f"{config.detector}, budget {config.budget_ms:.0f} ms", file=sys.stderr)

    tty = sys.stderr.isatty()
    calls = [0]

    def status(line: str) -> None:
        if tty:  # one line, rewritten in place
            print("\r" + line + " " * 8, end="", file=sys.stderr, flush=True)
        elif calls[0] % 10 == 0:  # a log (journal, file): a line every 10th status
            print(line, file=sys.stderr, flush=True)
        calls[0] += 1

    summary = Pipeline(config, deployment=deployment, status=status).run()
    print("", file=sys.stderr)
    print(summary.text())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    if summary.exit_code:
        print(f"emoedge run: exit {summary.exit_code} ({_EXIT_MEANING.get(summary.exit_code, '?')})", file=sys.stderr)
    return summary.exit_code


class _StderrHandler(logging.Handler):
    """Log records to whatever sys.stderr is when they are emitted (the journal under systemd)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


def _log_to_stderr() -> None:
    root = logging.getLogger("emoedge")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        h = _StderrHandler(logging.WARNING)
        h.setFormatter(logging.Formatter("emoedge: %(levelname)s: %(message)s"))
        root.addHandler(h)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


_EXIT_MEANING = {1: "unexpected error", 2: "bad input", 3: "source lost", 4: "records not written",
                 130: "interrupted"}


def cmd_profile(args) -> int:
    import yaml

    from emoedge.edge.profiles import list_profiles, load_profile

    if args.profile_command == "list":
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:24s} {p.board.name} ({p.deployment.mode}): {p.runtime.detector}, {p.runtime.model} "
                  f"{p.runtime.model_format}, budget {p.runtime.budget_ms:.0f} ms")
        return 0
    prof = load_profile(args.profile, overrides=args.set or [])
    if args.profile_command == "unit":
        from emoedge.edge.profiles import render_unit

        print(render_unit(prof, Path(args.template).read_text(), args.prefix, args.set or []), end="")
        return 0
    if args.profile_command == "check":
        print(f"{prof.path}: ok ({prof.board.name}, {prof.deployment.mode} mode)")
    else:
        print(yaml.safe_dump(prof.to_dict(), sort_keys=False), end="")
    return 0


def cmd_export(args) -> int:
    from emoedge.edge.sinks import export_csv

    if not Path(args.db).is_file():
        raise FileNotFoundError(f"{args.db}: summaries database not found")
    n = export_csv(args.db, args.csv)
    print(f"wrote {n} interval(s) to {args.csv}")
    return 0


def cmd_doctor(args) -> int:
    from emoedge.edge.doctor import FAIL, diagnose

    checks = diagnose(args.root, profile=args.profile, model=args.model, model_format=args.model_format,
                      overrides=args.set or [])
    for c in checks:
        print(c.line())
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(failed)} problem(s)" if failed else "no problems found")
    return 1 if failed else 0


def cmd_models_fetch(args) -> int:
    from emoedge.edge import fetch

    names = sorted(fetch.DETECTOR_FILES) if args.name == "all" else [args.name]
    for name in names:
        paths = fetch.fetch(name, args.dest, base_url=args.base_url)
        for p in paths:
            print(f"{name}: {p} (sha256 verified)")
    return 0


def _bench_failures(what: str, rows) -> int:
    """Name the failed rows of a bench run on stderr; the exit code: 1 when every row failed, else 0."""
    failed = [r for r in rows if r.status != "ok"]
    if failed:
        every = len(failed) == len(rows)
        print(f"emoedge bench {what}: {len(failed)} of {len(rows)} row(s) failed"
              + (" (all of them)" if every else "") + ":", file=sys.stderr)
        for r in failed:
            print(f"  {r.name}: {r.reason or 'no reason given'}", file=sys.stderr)
    return 1 if not rows or len(failed) == len(rows) else 0


def _bench_write(args, models=None, pipelines=None, targets=None) -> int:
    """Write results.json and the report; the exit code: 1 when every model or pipeline row given failed."""
    from emoedge.benchmarks.report import build_results, compare, write_report

    out = Path(args.out)
    prev = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    res = build_results(settings={"command": " ".join(sys.argv)})
    res["models"] = [m.to_dict(samples=True) for m in models] if models is not None else prev.get("models", [])
    res["pipelines"] = [p.to_dict() for p in pipelines] if pipelines is not None else prev.get("pipelines", [])
    res["targets"] = targets if targets is not None else prev.get("targets", [])
    md = write_report(res, out)
    print(md.read_text())
    if args.reference:
        ref = json.loads(Path(args.reference).read_text())
        rows = compare(res, ref, args.tolerance)
        (out / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
        for r in rows:
            print(f"  {r['kind']:8s} {r['name']}: {r['status']}")
    print(f"wrote {out}/results.json and {md}")
    rc = 0
    if models is not None:
        rc = max(rc, _bench_failures("models", models))
    if pipelines is not None:
        rc = max(rc, _bench_failures("pipeline", pipelines))
    return rc


def cmd_bench_models(args) -> int:
    import numpy as np

    from emoedge.benchmarks.classifiers import ClassifierSpec
    from emoedge.benchmarks.models import bench_models
    from emoedge.edge.formats import get_format
    from emoedge.edge.interpreter import ModelError
    from emoedge.edge.models import MODELS_DIR, resolve_model

    specs = []
    for m in args.model or []:
        name, _, fmt = m.partition("@")
        if Path(m).exists() or "@" not in m:
            path = Path(m)
        else:  # a shipped NAME@FORMAT; a missing one becomes a failed row, not an error
            try:
                path = resolve_model(name, fmt)
            except ModelError:
                path = MODELS_DIR / f"{name}{get_format(fmt).suffix}"
        specs.append(ClassifierSpec(str(path), name=path.name))
    specs += [ClassifierSpec.parse(p) for p in args.peer or []]
    if not specs:
        raise ValueError("give at least one --model or --peer")
    faces = labels = names = None
    if args.data:
        from emoedge.data.datasets import load_dataset
        from emoedge.evaluate import select_split

        ds = select_split(load_dataset(args.data), args.usage)
        idx = np.arange(len(ds))
        if args.eval_size and args.eval_size < len(ds):
            idx = np.sort(np.random.default_rng(0).choice(len(ds), args.eval_size, replace=False))
        faces, labels, names = ds.images[idx], ds.labels[idx], ds.class_names
    threads = [int(t) for t in args.threads.split(",")]
    results = bench_models(specs, faces, labels, names, reference=args.float_reference, threads=threads,
                           runs=args.runs, rss=not args.no_rss)
    return _bench_write(args, models=results)


def cmd_bench_pipeline(args) -> int:
    from emoedge.benchmarks.pipeline import bench_pipeline

    rows = []
    pipeline_models = getattr(args, "pipeline_model", None) or args.model
    threads = args.threads if isinstance(args.threads, int) or args.threads is None else int(args.threads.split(",")[0])
    for det in args.detector.split(","):
        for model in pipeline_models.split(","):
            rows.append(bench_pipeline(f"runtime {det} {model}@{args.format}", args.source, det, model, args.format,
                                       args.budget_ms, args.max_frames, args.detector_dir, threads))
            if getattr(args, "full_scale_too", False):  # detector parity: every frame, full resolution
                rows.append(bench_pipeline(f"runtime {det} {model}@{args.format} full-scale detection every frame",
                                           args.source, det, model, args.format, args.budget_ms, args.max_frames,
                                           args.detector_dir, threads, min_detect_scale=1.0, detect_every=1,
                                           adapt=False))
    if args.naive_keras:
        rows.append(bench_pipeline("naive baseline", args.source, max_frames=args.max_frames,
                                   naive_keras_model=args.naive_keras))
    return _bench_write(args, pipelines=rows)


def cmd_bench_soak(args) -> int:
    """Soak (RSS over N looped frames, each N in a fresh process) and the fault checks (SIGKILL,
    disk full, free-space floor); exit 1 when the target or a fault check that ran failed."""
    from emoedge.benchmarks.soak import all_passed, bench_soak, write_results

    frames = [int(n) for n in args.frames.split(",") if n]
    res = bench_soak(frames, args.source, args.model, args.budget_ms, args.interval_s, args.warmup,
                     args.tolerance_mb, faults=not args.no_faults, fault_model=args.fault_model,
                     tmpfs_size=args.tmpfs_size, log=lambda m: print(m, file=sys.stderr, flush=True))
    res["settings"]["command"] = "emoedge " + " ".join(sys.argv[1:])
    md = write_results(res, args.out)
    print(md.read_text())
    print(f"wrote {Path(args.out)}/soak.json, soak.md, soak_rss.png")
    return 0 if all_passed(res) else 1


def cmd_models_ship(args) -> int:
    from emoedge.convert.calibration import from_dataset
    from emoedge.convert.ship import ship
    from emoedge.data.datasets import load_dataset

    ds = load_dataset(args.data, labels=args.labels)
    formats = tuple(f for f in args.to.split(",") if f) if args.to else ()
    if formats and not (Path(args.run) / "model.keras").is_file() and (Path(args.run) / "model.hoglbp.npz").is_file():
        print(f"{args.run}: a HOG+LBP run is shipped as .hoglbp.npz only (no TFLite/ONNX conversion); "
              f"ignoring --to {args.to}", file=sys.stderr)
        formats = ()
    cal = from_dataset(ds, size=args.calib_size) if formats else None
    out = ship(args.run, args.name, ds, command=args.command or " ".join(sys.argv), usage=args.usage,
               formats=formats, calibration=cal, report_dir=args.report_dir or Path("docs/models") / args.name)
    for k, v in out.items():
        print(f"{k:10s} {v}")
    if args.float_dir:
        from emoedge.convert.ship import move_float_masters
        from emoedge.edge.models import MODELS_DIR

        moved = move_float_masters(MODELS_DIR, args.name, args.float_dir)
        print(f"moved {len(moved)} float master file(s) out of the package to {args.float_dir}")
    return 0


def cmd_bench_all(args) -> int:
    """Models (ours + the peer) and pipelines (runtime + naive baseline) in one run, with targets."""
    from emoedge.benchmarks.targets import evaluate_targets

    args.peer = args.peer or []
    failed = [cmd_bench_models(args)]          # each names its failed rows on stderr
    if args.source:
        failed.append(cmd_bench_pipeline(args))
    res = json.loads((Path(args.out) / "results.json").read_text())
    targets = evaluate_targets(res, peer_name=args.peer_name)
    rc = _bench_write(args, targets=targets)
    if all(failed):                            # every model row and every pipeline row failed
        print("emoedge bench all: every row failed (exit 1)", file=sys.stderr)
        return 1
    return rc


def cmd_models_list(args) -> int:
    from emoedge.edge.models import MODELS_DIR, SHIPPED, shipped_models

    have = shipped_models()
    for name, what in SHIPPED.items():
        print(f"{name:8s} {what}: {', '.join(have.get(name, [])) or 'not shipped yet'}")
    print(f"(in {MODELS_DIR})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emoedge", description="Facial emotion recognition for edge devices")
    sub = ap.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("inspect", help="counts per class and split, blanks, duplicates, leaks, plots")
    p.add_argument("data_path", metavar="DATA")
    p.add_argument("--labels", default="auto", choices=["auto", "fer2013", "ferplus"])
    p.add_argument("--votes")
    p.add_argument("--classes")
    p.add_argument("--rename")
    p.add_argument("--out", help="folder for inspect.json, class_distribution.png and samples.png")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_data_inspect)

    p = sub.add_parser("train", help="train a model of the zoo")
    _add_data_args(p)
    p.add_argument("--config", default="default", help="a training YAML, or a shipped one: default, fast")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set epochs=5 --set augment.flip=false")
    p.add_argument("--out", required=True, help="output folder for the run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class metrics, confusion matrix")
    p.add_argument("--model", required=True, help="a .tflite/.keras file or a shipped model name")
    p.add_argument("--format", default="int8", help="format of a shipped model: int8, uint8, onnx-int8, hoglbp, ...")
    _add_data_args(p)
    p.add_argument("--usage", help="split to score: a source split (PublicTest) or train/val/test; default all")
    p.add_argument("--json", help="write the evaluation JSON here (and a confusion-matrix PNG beside it)")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert", help="Keras -> TFLite float32/float16/dynamic/int8/uint8, Edge TPU, ONNX")
    p.add_argument("--model", required=True, help="the float Keras model")
    p.add_argument("--to", default="int8", help="comma-separated formats of the table "
                   "(float32, float16, dynamic, int8, uint8, edgetpu, onnx, onnx-int8) or 'all'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--stem", help="artifact base name (default: the model file's)")
    p.add_argument("--class-names", help="comma-separated, if the model has no manifest")
    p.add_argument("--calib", help="calibration data: a dataset (its training split) or a folder of face images")
    p.add_argument("--calib-size", type=int, default=300)
    p.add_argument("--labels", default="auto", choices=["auto", "fer2013", "ferplus"])
    p.add_argument("--report", action="store_true", help="score every artifact against the float model")
    p.add_argument("--data", help="labelled dataset for --report")
    p.add_argument("--usage", default="PublicTest", help="split for --report")
    p.add_argument("--selective", action="store_true", help="also keep flagged layers in float and score that")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("classify", help="detect and classify the faces of one image (default: a demo photo)")
    p.add_argument("--image", help="an image file; default: the demo photo shipped with matplotlib")
    p.add_argument("--model", default="default", help="a shipped model name or a .tflite file")
    p.add_argument("--format", default="int8")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="write the image with boxes and labels here")
    p.add_argument("--json", help="write the predictions as JSON here")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("calibrate", help="fit temperature scaling on validation data; record it in the manifests")
    p.add_argument("--model", required=True)
    _add_data_args(p)
    p.add_argument("--usage", default="val", help="split to fit on (default: validation carved from training)")
    p.add_argument("--also", action="append", help="other artifacts of the same model to record T in")
    p.add_argument("--out", help="folder for calibration.json and reliability.png")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("explain", help="Grad-CAM (and CBAM attention) overlays: where the model looks")
    p.add_argument("--model", required=True, help="a Keras model")
    p.add_argument("--image", help="a photo: every face found gets an overlay")
    _add_data_args(p, required=False)
    p.add_argument("--usage", default="PublicTest")
    p.add_argument("--per-class", type=int, default=3)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("ensemble", help="combine models: a fused .keras (mean, optional mirror view), or device "
                                        "ensembles of any format by mean, vote and stacking, scored against members")
    p.add_argument("models", nargs="+", help="model files with the same classes (.keras for a fused .keras; any "
                                             "format of the table for a device ensemble)")
    p.add_argument("--flip", action="store_true", help="fused .keras only: also average each member on the mirror")
    p.add_argument("--weights", help="fused .keras only: comma-separated weight per member (default equal)")
    p.add_argument("--mean", choices=("probs", "logits"), default="probs",
                   help="fused .keras only: average the class probabilities (default) or the scores before the "
                        "softmax, one softmax on their mean (members must end in a softmax)")
    p.add_argument("--average", action="store_true",
                   help="fused .keras only: average the members' weights (same architecture, e.g. snapshots of one "
                        "run) into one network, BatchNorm re-estimated on the training split of --data; --flip and "
                        "--zoom then add views of it")
    p.add_argument("--zoom", type=int, default=0, metavar="PX",
                   help="fused .keras only: also average every view's centre crop PX pixels in from each side, "
                        "scaled back to full size (0: off)")
    p.add_argument("--out", required=True, help="NAME.keras (fused Keras model) or a folder (device ensembles)")
    p.add_argument("--method", help="device ensembles: comma-separated of mean,vote,stack (default all)")
    p.add_argument("--name", default="ensemble", help="device ensembles: file name stem")
    p.add_argument("--threads", type=int, default=1, help="threads for the latency per face")
    _add_data_args(p, required=False)
    p.add_argument("--usage", default="PublicTest", help="split to compare members and ensemble on")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("run", help="the on-device pipeline: camera/file -> faces -> emotions -> sinks")
    p.add_argument("--config", help="a runtime YAML (keys of emoedge.edge.config.RuntimeConfig)")
    p.add_argument("--profile", help="a device profile name or YAML file (firmware_configs/)")
    p.add_argument("--source", help="demo, picamera, a camera index, /dev/videoN, a GStreamer pipeline, a video, "
                   "an image or a folder")
    p.add_argument("--model", help="a shipped model name or a .tflite/.onnx file")
    p.add_argument("--model-format", dest="model_format", help="format of a shipped model (int8, float32, ...)")
    p.add_argument("--delegate", choices=["cpu", "edgetpu"], help="where the classifier runs (default cpu)")
    p.add_argument("--threads", type=int, help="interpreter threads, 1 or more (default: the back-end's)")
    p.add_argument("--detector", choices=["haar", "blazeface", "ssd"], help="face detector (default haar)")
    p.add_argument("--detector-dir", dest="detector_dir",
                   help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--budget-ms", dest="budget_ms", type=float, help="per-frame latency budget in ms (default 66)")
    p.add_argument("--detect-every", dest="detect_every", type=int,
                   help="run the detector every N frames, track in between (default 5)")
    p.add_argument("--max-faces", dest="max_faces", type=int, help="faces classified per frame at most (default 4)")
    p.add_argument("--uncertain-below", dest="uncertain_below", type=float,
                   help="smoothed confidence below this is labelled 'uncertain' (default 0.4)")
    p.add_argument("--interval-s", dest="interval_s", type=float,
                   help="seconds per interval summary (default 60)")
    p.add_argument("--max-frames", dest="max_frames", type=int, help="stop after this many frames")
    p.add_argument("--display", dest="display", action="store_true", default=None,
                   help="show the overlay in a window (needs GUI OpenCV; refused by a no-images profile)")
    p.add_argument("--no-display", dest="display", action="store_false", help="no window")
    p.add_argument("--fullscreen", action="store_true", default=None, help="kiosk: the overlay full screen")
    p.add_argument("--realtime", action="store_true", default=None,
                   help="play files at their own frame rate (wait when early, skip frames when late)")
    p.add_argument("--loop", action="store_true", default=None,
                   help="replay a video file, image or folder forever (soak tests, kiosk demos)")
    p.add_argument("--events", help="JSON Lines file: a run line, label changes, interval summaries")
    p.add_argument("--db", help="SQLite file of interval summaries (wall-clock UTC, run and boot ids)")
    p.add_argument("--video-out", dest="video_out",
                   help="write the overlay video here, at the source's pace (stores images: refused by profiles "
                        "that forbid it)")
    p.add_argument("--metrics-port", dest="metrics_port", type=int,
                   help="serve /health and /metrics on 127.0.0.1:PORT (0..65535)")
    p.add_argument("--retention-days", dest="retention_days", type=float,
                   help="delete stored summaries older than this many days (default: keep all)")
    p.add_argument("--min-free-mb", dest="min_free_mb", type=float,
                   help="write no record while the disk has less than this free (default 50 MB)")
    p.add_argument("--summary-json", help="write the run summary here")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a profile value")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="interval summaries from a sensor's SQLite file as CSV")
    p.add_argument("--db", required=True)
    p.add_argument("--csv", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("doctor", help="check this board, camera, Edge TPU, interpreter, model and profile")
    p.add_argument("--profile", help="a profile name or YAML file to check against this board")
    p.add_argument("--model", help="model to check (default: the profile's, else default)")
    p.add_argument("--model-format", dest="model_format", help="format of a shipped model (default: the profile's)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a profile value")
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_doctor)

    prof = sub.add_parser("profile", help="device profiles (firmware_configs/)").add_subparsers(
        dest="profile_command", required=True)
    prof.add_parser("list").set_defaults(func=cmd_profile)
    for name, what in (("check", "validate a profile file or name"), ("show", "the fully resolved settings"),
                       ("unit", "the systemd unit for a profile (Restart, WatchdogSec, User, data folder from its "
                                "deployment section)")):
        p = prof.add_parser(name, help=what)
        p.add_argument("profile", help="a profile name (e.g. rpi4) or a YAML file")
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a value (repeatable), e.g. deployment.purpose='...'")
        if name == "unit":
            p.add_argument("--template", required=True, help="a unit template (deploy/systemd/*.service)")
            p.add_argument("--prefix", default="/opt/emoedge", help="install prefix holding venv/ (default %(default)s)")
        p.set_defaults(func=cmd_profile)

    bench = sub.add_parser("bench", help="benchmarks: models and pipelines").add_subparsers(
        dest="bench_command", required=True)
    p = bench.add_parser("models", help="size, load, latency percentiles, throughput, RSS, accuracy per artifact")
    p.add_argument("--model", action="append", help="a file, or shipped NAME@FORMAT (e.g. default@int8)")
    p.add_argument("--peer", action="append", help="an external classifier: PATH:size=64,norm=signed,name=fer")
    p.add_argument("--data", help="labelled dataset for accuracy")
    p.add_argument("--usage", default="PublicTest")
    p.add_argument("--eval-size", type=int, help="score a random subset of this size")
    p.add_argument("--float-reference", help="the float model (path or name) for loss and agreement")
    p.add_argument("--threads", default="1", help="comma-separated thread counts")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--reference", help="reference results.json to compare with")
    p.add_argument("--tolerance", type=float, default=0.25)
    p.set_defaults(func=cmd_bench_models)
    p = bench.add_parser("pipeline", help="end-to-end FPS, stage latency, budget hit rate, CPU, RSS")
    p.add_argument("--source", required=True)
    p.add_argument("--detector", default="haar", help="comma-separated")
    p.add_argument("--model", default="default", help="comma-separated shipped names or files")
    p.add_argument("--format", default="int8")
    p.add_argument("--budget-ms", type=float, default=66.0)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--detector-dir")
    p.add_argument("--threads", type=int)
    p.add_argument("--naive-keras", help="also run the naive baseline with this Keras model")
    p.add_argument("--full-scale-too", action="store_true",
                   help="also run each configuration detecting on every frame at full resolution (detector parity)")
    p.add_argument("--out", required=True)
    p.add_argument("--reference")
    p.add_argument("--tolerance", type=float, default=0.25)
    p.set_defaults(func=cmd_bench_pipeline)
    p = bench.add_parser("soak", help="RSS over long looped runs (peak, slope per frame) and the fault checks: "
                                      "SIGKILL mid-run, disk full (tmpfs, needs root), free-space floor")
    p.add_argument("--frames", default="2000,20000", help="comma-separated run lengths, each in a fresh process")
    p.add_argument("--source", help="default: ../shared/media/short_hamilton_clip.mp4 if present, else demo")
    p.add_argument("--model", default="default", help="shipped name or file for the soak runs")
    p.add_argument("--budget-ms", type=float, default=66.0)
    p.add_argument("--interval-s", type=float, default=5.0, help="interval summaries every this many seconds")
    p.add_argument("--warmup", type=float, default=0.15, help="fraction of frames left out of the slope fit")
    p.add_argument("--tolerance-mb", type=float, default=2.0, help="peak RSS difference allowed (the target)")
    p.add_argument("--fault-model", default="fast", help="model for the fault checks")
    p.add_argument("--tmpfs-size", default="1m", help="size of the tmpfs the disk-full check fills")
    p.add_argument("--no-faults", action="store_true", help="only the soak runs")
    p.add_argument("--out", default="docs/benchmarks/x86-dev", help="folder for soak.json, soak.md, soak_rss.png")
    p.set_defaults(func=cmd_bench_soak)

    p = bench.add_parser("all", help="models + pipelines + the targets, in one run")
    for a, kw in (("--model", {"action": "append"}), ("--peer", {"action": "append"}), ("--data", {}),
                  ("--usage", {"default": "PublicTest"}), ("--eval-size", {"type": int}),
                  ("--float-reference", {}), ("--threads", {"default": "1"}), ("--runs", {"type": int, "default": 300}),
                  ("--source", {}), ("--detector", {"default": "haar"}), ("--format", {"default": "int8"}),
                  ("--budget-ms", {"type": float, "default": 66.0}), ("--max-frames", {"type": int}),
                  ("--detector-dir", {}), ("--naive-keras", {}), ("--peer-name", {"default": "fer"}),
                  ("--out", {"required": True}), ("--reference", {}), ("--tolerance", {"type": float, "default": 0.25})):
        p.add_argument(a, **kw)
    p.add_argument("--no-rss", action="store_true")
    p.add_argument("--pipeline-model", dest="pipeline_model", default="default")
    p.add_argument("--full-scale-too", action="store_true",
                   help="also run each pipeline detecting on every frame at full resolution (detector parity)")
    p.set_defaults(func=cmd_bench_all)

    models = sub.add_parser("models", help="shipped models").add_subparsers(dest="models_command", required=True)
    p = models.add_parser("list")
    p.set_defaults(func=cmd_models_list)
    p = models.add_parser("ship", help="put a training run into the package as a shipped model (+ conversions)")
    p.add_argument("--run", required=True, help="a training output folder (run.json, model.keras)")
    p.add_argument("--float-dir", help="move the float masters (.keras, float .tflite/.onnx) here after shipping: "
                                       "the package then carries only the quantized device files")
    from emoedge.edge.models import SHIPPED

    p.add_argument("--name", required=True, choices=sorted(SHIPPED))
    p.add_argument("--data", required=True, help="the dataset to evaluate on (and calibrate from)")
    p.add_argument("--labels", default="auto", choices=["auto", "fer2013", "ferplus"])
    p.add_argument("--usage", default="PublicTest")
    p.add_argument("--to", default="int8,uint8,edgetpu,onnx,onnx-int8", help="formats to convert beside it")
    p.add_argument("--calib-size", type=int, default=300)
    p.add_argument("--report-dir", help="where the quantization report goes (default: docs/models/NAME)")
    p.add_argument("--command", help="the training command to record in the model card")
    p.set_defaults(func=cmd_models_ship)
    p = models.add_parser("fetch", help="download detector files (sha256 pinned)")
    p.add_argument("name", choices=["blazeface", "ssd", "all"])
    p.add_argument("--dest", help="folder (default: $EMOEDGE_MODELS or ~/.cache/emoedge/models)")
    p.add_argument("--base-url", help="fetch from this mirror instead of the official location")
    p.set_defaults(func=cmd_models_fetch)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Exit codes (``emoedge.edge.errors``): 0 done, 1 unexpected error (traceback), 2 bad input,
    3 source lost, 4 records not written, 130 interrupted."""
    from emoedge.edge.errors import exit_code_of

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        code = exit_code_of(exc)
        print(f"emoedge: error: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("emoedge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
