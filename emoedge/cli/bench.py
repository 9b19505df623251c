"""``emoedge bench models|pipeline|soak|photos|crops|all`` -> :func:`emoedge.benchmarks.model_bench.bench_models`,
:func:`emoedge.benchmarks.pipeline_bench.bench_pipeline`, :func:`emoedge.benchmarks.soak.bench_soak`,
:func:`emoedge.benchmarks.photo_bench.bench_photos`, :func:`emoedge.benchmarks.crop_fit.bench_crops`;
results and report by :mod:`emoedge.benchmarks.report` (targets: :mod:`emoedge.benchmarks.targets`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from emoedge.benchmarks.fleet_load_cli import add_load_options
from emoedge.cli._common import add_group, add_parser, comma_list
from emoedge.core.errors import BadInputError
from emoedge.core.shipped import DEFAULT_MODEL


def peer_spec(text: str):
    """``PATH:size=64,norm=signed,name=fer`` -> a ClassifierSpec (imported only when given)."""
    from emoedge.benchmarks.classifiers import ClassifierSpec

    return ClassifierSpec.parse(text)


def _failures(what: str, rows) -> int:
    """Name the failed rows of a bench run on stderr; 1 when every row failed (or there is none), else 0."""
    failed = [r for r in rows if r.status != "ok"]
    if failed:
        print(f"emoedge bench {what}: {len(failed)} of {len(rows)} row(s) failed"
              + (" (all of them)" if len(failed) == len(rows) else "") + ":", file=sys.stderr)
        for r in failed:
            print(f"  {r.name}: {r.reason or 'no reason given'}", file=sys.stderr)
    return 1 if not rows or len(failed) == len(rows) else 0


def _write(args, models=None, pipelines=None, peer_name: str | None = None) -> list[int]:
    """results.json (parts not run now kept from the one in --out) and the report, written once;
    with ``peer_name`` the targets are evaluated on it. Returns the exit code of each part run."""
    from emoedge.benchmarks.machine import dirty_warning
    from emoedge.benchmarks.report import merge_results, write_comparison, write_report

    res = merge_results(args.out, models, pipelines, peer_name, command=" ".join(sys.argv))
    md = write_report(res, args.out)
    print(md.read_text())
    if args.reference:
        for r in write_comparison(res, args.reference, args.tolerance, args.out):
            print(f"  {r['kind']:8s} {r['name']}: {r['status']}")
    print(f"wrote {Path(args.out)}/results.json and {md}")
    if dirty_warning(res["machine"].get("git_revision")):
        print(dirty_warning(res["machine"]["git_revision"]), file=sys.stderr)
    codes = [_failures("models", models)] if models is not None else []
    return codes + ([_failures("pipeline", pipelines)] if pipelines is not None else [])


def _model_rows(args):
    import numpy as np

    from emoedge.benchmarks.classifiers import ClassifierSpec
    from emoedge.benchmarks.model_bench import bench_models
    from emoedge.cli._common import model_file

    paths = [model_file(m, missing_ok=True) for m in args.model]  # a missing one: a failed row
    specs = [ClassifierSpec(str(p), name=p.name) for p in paths] + list(args.peer)
    if not specs:
        raise BadInputError("give at least one --model or --peer")
    faces = labels = names = None
    if args.data:
        from emoedge.data.datasets import load_dataset
        from emoedge.evaluate import select_split

        ds = select_split(load_dataset(args.data), args.usage)
        idx = np.arange(len(ds))
        if args.eval_size and args.eval_size < len(ds):
            idx = np.sort(np.random.default_rng(0).choice(len(ds), args.eval_size, replace=False))
        faces, labels, names = ds.images[idx], ds.labels[idx], ds.class_names
    return bench_models(specs, faces, labels, names, reference=args.float_reference, threads=args.threads,
                        runs=args.runs, rss=not args.no_rss)


def _pipeline_rows(args, models: list[str], threads: int | None):
    from emoedge.benchmarks.pipeline_bench import bench_pipeline

    rows = []
    for det in args.detector:
        for model in models:
            name = f"runtime {det} {model}@{args.format}"
            common = (args.source, det, model, args.format, args.budget_ms, args.max_frames, args.detector_dir, threads)
            rows.append(bench_pipeline(name, *common))
            if args.full_scale_too:  # detector parity: every frame, full resolution
                rows.append(bench_pipeline(f"{name} full-scale detection every frame", *common, min_detect_scale=1.0,
                                           detect_every=1, adapt=False))
    if args.naive_keras:
        rows.append(bench_pipeline("naive baseline", args.source, max_frames=args.max_frames,
                                   naive_keras_model=args.naive_keras))
    return rows


def cmd_bench_models(args) -> int:
    return max(_write(args, models=_model_rows(args)))


def cmd_bench_pipeline(args) -> int:
    return max(_write(args, pipelines=_pipeline_rows(args, args.model, args.threads)))


def cmd_bench_all(args) -> int:
    """Models (ours + the peer) and pipelines (runtime + naive baseline) in one run, with targets;
    exit 1 when every row of every part run failed."""
    models = _model_rows(args)
    pipelines = _pipeline_rows(args, args.pipeline_model, args.threads[0]) if args.source else None
    codes = _write(args, models=models, pipelines=pipelines, peer_name=args.peer_name)
    if all(codes):
        print("emoedge bench all: every row failed (exit 1)", file=sys.stderr)
        return 1
    return 0


def cmd_bench_soak(args) -> int:
    """Soak (RSS over N looped frames, each N in a fresh process) and the fault checks (SIGKILL,
    disk full, free-space floor); exit 1 when the target or a fault check that ran failed."""
    from emoedge.benchmarks.soak import bench_soak
    from emoedge.benchmarks.soak_report import all_passed, write_results

    res = bench_soak(args.frames, args.source, args.model, args.budget_ms, args.interval_s, args.warmup,
                     args.tolerance_mb, faults=not args.no_faults, fault_model=args.fault_model,
                     tmpfs_size=args.tmpfs_size, log=lambda m: print(m, file=sys.stderr, flush=True))
    res["settings"]["command"] = "emoedge " + " ".join(sys.argv[1:])
    md = write_results(res, args.out)
    print(md.read_text())
    print(f"wrote {Path(args.out)}/soak.json, soak.md, soak_rss.png")
    return 0 if all_passed(res) else 1


def cmd_bench_photos(args) -> int:
    """End-to-end accuracy on labelled photos: every (model or peer) x detector, plus the whole photo."""
    from emoedge.benchmarks.photo_bench import bench_photos, stderr_log, write_photo_bench

    if not args.model and not args.peer:
        raise BadInputError("give at least one --model or --peer")
    res = bench_photos(args.data, args.model, args.peer, args.detector, args.detector_dir, args.pad,
                       args.threads, args.peer_crop, log=stderr_log)
    res["settings"]["command"] = "emoedge " + " ".join(sys.argv[1:])
    md = write_photo_bench(res, args.out)
    print(md.read_text())
    print(f"wrote {Path(args.out)}/photos.json, photos.md, photos.png")
    return 1 if not res["rows"] else 0


def cmd_bench_crops(args) -> int:
    """Each detector's box measured against the training crop: fitted on training faces, checked on validation."""
    from emoedge.benchmarks.crop_fit import bench_crops, write_crops

    res = bench_crops(args.data, args.detector, args.detector_dir, args.model, args.n_fit, args.n_val, args.seed,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.haar_variants:
        from emoedge.benchmarks.crop_fit import haar_variants

        res["haar_variants"] = haar_variants(args.data, args.model, args.n_val, args.seed,
                                             log=lambda m: print(m, file=sys.stderr, flush=True))
    res["command"] = "emoedge " + " ".join(sys.argv[1:])
    write_crops(res, args.out)
    print((Path(args.out) / "crops.md").read_text())
    print(f"wrote {Path(args.out)}/crops.json, crops.md")
    return 0


def _model_options(p) -> None:
    p.add_argument("--model", action="append", default=[],
                   help="a model file, a shipped name (its int8 file) or NAME@FORMAT (e.g. default@int8; "
                        "onepass@keras: its float master); repeatable")
    p.add_argument("--peer", action="append", default=[], type=peer_spec,
                   help="an external classifier: PATH:size=64,norm=signed,name=fer; repeatable")
    p.add_argument("--data", help="labelled dataset for accuracy")
    p.add_argument("--usage", default="PublicTest", help="split of --data to score")
    p.add_argument("--eval-size", type=int, help="score a random subset of this size (default: the whole split)")
    p.add_argument("--float-reference", help="the float model (path or name) for loss and agreement")
    p.add_argument("--threads", default="1", type=comma_list(int), help="comma-separated thread counts")
    p.add_argument("--runs", type=int, default=300, help="timed runs per model and thread count")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS measurement (a process per model)")


def _pipeline_options(p, model_flag: str = "--model", source_required: bool = True) -> None:
    p.add_argument("--source", required=source_required,
                   help="a video, image, folder or camera" + ("" if source_required else " (none: no pipelines)"))
    p.add_argument("--detector", default="haar", type=comma_list(), help="comma-separated face detectors")
    p.add_argument(model_flag, default=DEFAULT_MODEL, type=comma_list(),
                   help=f"comma-separated shipped names or files for the pipelines (default: {DEFAULT_MODEL})")
    p.add_argument("--format", default="int8", help="format of the shipped models")
    p.add_argument("--budget-ms", type=float, default=66.0, help="per-frame latency budget")
    p.add_argument("--max-frames", type=int,
                   help="stop each pipeline after this many frames (default: the source's end)")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--naive-keras", help="also run the naive baseline with this Keras model")
    p.add_argument("--full-scale-too", action="store_true",
                   help="also run each configuration detecting on every frame at full resolution (detector parity)")


def cmd_bench_board(args) -> int:
    """Stage times of this board (measured) or, with --estimate, of the Pi boards derived from
    published runs; CSV + JSON (+ the estimates page) in --out; profiles rewritten when asked."""
    from emoedge.benchmarks.board_measure import measure
    from emoedge.benchmarks.board_profile import write_estimated_profile, write_measured_profile
    from emoedge.benchmarks.board_report import write_estimates_md, write_measured
    from emoedge.benchmarks.board_timings import estimate
    from emoedge.benchmarks.soak import shared_dir

    shared = Path(args.shared) if args.shared else shared_dir()
    shared = shared if shared.is_dir() else None
    source = args.source or (str(shared / "media" / "short_hamilton_clip.mp4") if shared else None)
    out = Path(args.out)
    if args.estimate:
        res = estimate(shared, source, args.detector_dir, Path(args.cache), args.runs)
        md = write_estimates_md(res, out)
        print(md.read_text())
        for name in args.update_profiles:
            board = write_estimated_profile(name, res)
            print(f"wrote the estimated detector_ms and classifier_ms of {board} into {name}")
        return 0 if res["rows"] else 1
    threads = args.threads or os.cpu_count() or 1
    res = measure(threads, source, args.detector_dir, args.runs)
    csv_path = write_measured(res, out)
    for r in res["rows"]:
        print(f"  {r['stage']:15s} {r['ms']:8.2f} ms  ({r['threads']} threads)")
    for k, why in res["skipped"].items():
        print(f"  {k:15s} not timed: {why}", file=sys.stderr)
    print(f"wrote {csv_path}")
    if args.write_profile:
        write_measured_profile(args.write_profile, res, threads, csv_path)
        print(f"wrote the measured detector_ms and classifier_ms into {args.write_profile}")
    return 0 if res["rows"] else 1


def cmd_bench_fleet(args) -> int:
    """N devices publishing into one broker and one fleet store; exit 1 unless every interval arrived once.
    With ``--simulate N``: N simulated devices into K workers (emoedge.benchmarks.fleet_load_cli)."""
    from emoedge.benchmarks.fleet_load_cli import check_options, run_load

    check_options(args)
    if args.simulate is not None:
        return run_load(args)
    from emoedge.benchmarks.fleet_sim import bench_fleet, write_fleet_report
    from emoedge.benchmarks.soak import default_source

    out = Path(args.out or "docs/benchmarks/fleet")
    res = bench_fleet(out, args.devices, args.seconds or 60.0, args.source or default_source(), args.model,
                      args.interval_s, args.mqtt)
    md = write_fleet_report(res, out)
    print(md.read_text())
    ok = res["intervals_in"] == res["intervals_out"] and not res["missing"] and not res["unexpected"]
    if res["errors"]:
        for name, err in res["errors"].items():
            print(f"{name}: {err}", file=sys.stderr)
    return 0 if ok and res["intervals_in"] and not res["errors"] else 1


def _report_options(p) -> None:
    p.add_argument("--out", required=True, help="folder for results.json, report.md and the plots")
    p.add_argument("--reference", help="reference results.json to compare with (comparison.json)")
    p.add_argument("--tolerance", type=float, default=0.25,
                   help="latency/FPS may be worse than the reference by this fraction")


def _register_models(bench) -> None:
    p = add_parser(bench, "models", "size, load, latency percentiles, throughput, RSS, accuracy per artifact")
    _model_options(p)
    _report_options(p)
    p.set_defaults(func=cmd_bench_models)


def _register_pipeline(bench) -> None:
    p = add_parser(bench, "pipeline", "end-to-end FPS, stage latency, budget hit rate, CPU, RSS")
    _pipeline_options(p)
    p.add_argument("--threads", type=int, help="interpreter threads (default: the back-end's)")
    _report_options(p)
    p.set_defaults(func=cmd_bench_pipeline)


def _register_soak(bench) -> None:
    p = add_parser(bench, "soak", "RSS over long looped runs (peak, slope per frame; the target: the same peak, a "
                                  "late slope of at most 5 MB a day at 15 FPS) and the fault checks: "
                                  "SIGKILL mid-run, disk full (tmpfs, needs root), free-space floor")
    p.add_argument("--frames", default="2000,20000", type=comma_list(int),
                   help="comma-separated run lengths, each in a fresh process")
    p.add_argument("--source", help="default: ../shared/media/short_hamilton_clip.mp4 if present, else demo")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"shipped name or file for the soak runs (default: "
                   f"{DEFAULT_MODEL}, what runs when no model is named)")
    p.add_argument("--budget-ms", type=float, default=66.0, help="per-frame latency budget")
    p.add_argument("--interval-s", type=float, default=5.0, help="interval summaries every this many seconds")
    p.add_argument("--warmup", type=float, default=0.15, help="fraction of frames left out of the slope fit")
    p.add_argument("--tolerance-mb", type=float, default=2.0, help="peak RSS difference allowed (the target)")
    p.add_argument("--fault-model", default="fast", help="model for the fault checks")
    p.add_argument("--tmpfs-size", default="1m", help="size of the tmpfs the disk-full check fills")
    p.add_argument("--no-faults", action="store_true", help="only the soak runs")
    p.add_argument("--out", default="docs/benchmarks/x86-dev", help="folder for soak.json, soak.md, soak_rss.png")
    p.set_defaults(func=cmd_bench_soak)


def _register_photos(bench) -> None:
    p = add_parser(bench, "photos", "end-to-end accuracy on labelled photos (root/<class>/*) per model and "
                                    "detector, plus the whole photo as the face")
    p.add_argument("--data", required=True, help="folder of labelled photos: root/<class>/*")
    p.add_argument("--model", action="append", default=[], help="a model file or a shipped name; repeatable")
    p.add_argument("--peer", action="append", default=[], type=peer_spec,
                   help="an external classifier: PATH:size=64,norm=signed,name=fer; repeatable")
    p.add_argument("--peer-crop", default="fer", choices=("fer", "ours"),
                   help="how a peer's face is cut from the box: the fer package's way (default) or ours")
    p.add_argument("--detector", default="haar", type=comma_list(), help="comma-separated face detectors")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--pad", type=float, default=0.5, help="pad each photo by this x its longer side before detection")
    p.add_argument("--threads", type=int, help="interpreter threads (default: the back-end's)")
    p.add_argument("--out", required=True, help="folder for photos.json, photos.md, photos.png")
    p.set_defaults(func=cmd_bench_photos)


def _register_crops(bench) -> None:
    p = add_parser(bench, "crops", "each detector's box against the training crop: the crop geometry fitted on "
                                   "training faces shown in larger frames, end-to-end accuracy on validation faces")
    p.add_argument("--data", required=True, help="FER2013 CSV (or a dataset of 48x48 training crops)")
    p.add_argument("--detector", default="haar,blazeface,ssd", type=comma_list(), help="comma-separated face detectors")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--model", default="default", help="model (shipped name or file) for the validation accuracy")
    p.add_argument("--n-fit", type=int, default=1500, help="training faces to fit on")
    p.add_argument("--n-val", type=int, default=1500, help="validation faces to check on")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--haar-variants", action="store_true",
                   help="also compare the Haar cascades (default, alt2) with and without the tilted pass")
    p.add_argument("--out", default="docs/benchmarks/x86-dev", help="folder for crops.json, crops.md")
    p.set_defaults(func=cmd_bench_crops)


def _register_board(bench) -> None:
    p = add_parser(bench, "board", "stage times of this board (detectors per 640x360 frame, classifiers per face) "
                                   "into a CSV, or --estimate the Pi boards' from published reference runs")
    p.add_argument("--estimate", action="store_true",
                   help="derive the Pi boards' times from published runs (run on the development machine)")
    p.add_argument("--threads", type=int, help="threads when measuring (default: all cores; --estimate: 1)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per stage and frame")
    p.add_argument("--source", help="video for the detector frames (default: the shared clip, else the demo photo)")
    p.add_argument("--shared", help="the shared data folder (photos, clip; default: $EMOEDGE_SHARED or ../shared "
                                    "beside the repository)")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "emoedge" / "bench"),
                   help="where --estimate keeps the reference network it builds")
    p.add_argument("--write-profile", help="rewrite this profile's board.detector_ms with the measured times")
    p.add_argument("--update-profiles", action="append", default=[],
                   help="with --estimate: rewrite this profile's detector_ms with its board's estimates; repeatable")
    p.add_argument("--out", required=True, help="folder for board.csv/board.json (--estimate: estimates.*)")
    p.set_defaults(func=cmd_bench_board)


def _register_fleet(bench) -> None:
    p = add_parser(bench, "fleet", "N devices (emoedge run --mqtt on the looped clip) into one broker and one "
                                   "emoedge fleet store: intervals in = out, CPU per interval, the page's screenshot; "
                                   "--simulate N: N lightweight simulated devices into K workers (a district's load)")
    p.add_argument("--devices", type=int, default=10, help="emoedge run processes")
    p.add_argument("--seconds", type=float, help="how long they run (default 60; with --simulate 300, "
                                                 "0: no steady run)")
    p.add_argument("--interval-s", type=float, default=1.0, help="interval summary length")
    p.add_argument("--model", default="fast", help="model of every device")
    p.add_argument("--source", help="default: ../shared/media/short_hamilton_clip.mp4 if present, else demo")
    p.add_argument("--mqtt", help="an existing broker (default: a Mosquitto started here on 127.0.0.1)")
    add_load_options(p)
    p.add_argument("--out", help="folder for fleet.json, fleet.md, fleet-page.png (default docs/benchmarks/fleet); "
                                 "with --simulate fleet-load.json, fleet-load.md (default docs/benchmarks/fleet-load)")
    p.set_defaults(func=cmd_bench_fleet)


def _register_all(bench) -> None:
    p = add_parser(bench, "all", "models + pipelines + the targets, in one run (one report)")
    _model_options(p)
    _pipeline_options(p, model_flag="--pipeline-model", source_required=False)
    p.add_argument("--peer-name", default="fer", help="the --peer the targets compare with")
    _report_options(p)
    p.set_defaults(func=cmd_bench_all)


def register(sub) -> None:
    """``emoedge bench SUBCOMMAND``: one parser per subcommand, in this order in the help."""
    bench = add_group(sub, "bench", "benchmarks: models, pipelines, long runs", dest="bench_command")
    for add in (_register_models, _register_pipeline, _register_soak, _register_photos,
                _register_crops, _register_board, _register_fleet, _register_all):
        add(bench)
