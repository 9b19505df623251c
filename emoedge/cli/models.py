"""``emoedge models list|ship|card|fetch`` -> :func:`emoedge.core.shipped.shipped_models`,
:func:`emoedge.convert.ship.ship`, :func:`emoedge.convert.modelcard.refresh_card`,
:func:`emoedge.edge.faces.fetch.fetch`."""

from __future__ import annotations

import sys
from pathlib import Path

from emoedge.cli._common import LABEL_SETS, add_data_args, add_group, add_parser, comma_list, dataset


def cmd_models_list(args) -> int:
    """The shipped models: classes, network passes and MACs per face (from the manifests), the int8
    file's size, test accuracy (the card's headline: the int8 file's), what each is for, and its files."""
    from emoedge.core.shipped import MODELS_DIR, SHIPPED, read_manifest, shipped_models
    from emoedge.tables import markdown_table

    have = shipped_models()
    rows = []
    for name, what in SHIPPED.items():
        files = have.get(name, [])
        main = next((MODELS_DIR / f for f in files if f.endswith((".int8.tflite", ".hoglbp.npz"))), None)
        m = (read_manifest(main) or {}) if main else {}
        acc = _card_accuracy(MODELS_DIR / f"{name}.md")
        macs = m.get("macs_per_face")
        rows.append([name, str(len(m.get("class_names") or [])) or "-", str(m.get("passes_per_face", "-")),
                     f"{macs / 1e6:.0f}" if macs else "-", f"{main.stat().st_size / 1e6:.2f}" if main else "-",
                     f"{100 * acc['accuracy']:.2f}% ({acc.get('split', '?')}, n={acc.get('n')})" if acc else "-",
                     what])
    print(markdown_table(["model", "classes", "passes/face", "MMACs/face", "MB", "test accuracy", "for"], rows,
                         "lrrrrll"))
    if args.files:
        for name in SHIPPED:
            print(f"{name}: {', '.join(have.get(name, [])) or 'not shipped yet'}")
    print(f"(in {MODELS_DIR}; ferplus7's and ferplus8's accuracies are on FER+ labels, the crowd's majority; "
          "the others' on FER2013's)")
    return 0


def _card_accuracy(card: Path) -> dict:
    """The accuracy a card headlines (its front matter's model-index): accuracy, split, n; {} without one."""
    import re

    from emoedge.convert.modelcard import read_front_matter

    meta = read_front_matter(card.read_text()) if card.is_file() else {}
    if not meta.get("model-index"):
        return {}
    result = meta["model-index"][0]["results"][0]
    metric = result["metrics"][0]
    n = re.search(r"n=(\d+)", metric.get("name", ""))
    return {"accuracy": metric["value"], "split": result["dataset"].get("split"), "n": int(n[1]) if n else None}


def cmd_models_ship(args) -> int:
    from emoedge.convert.calibration import from_dataset
    from emoedge.convert.ship import ship
    from emoedge.data.datasets import load_dataset

    ds = load_dataset(args.data, labels=args.labels)
    formats = tuple(args.to)
    if formats and not (Path(args.run) / "model.keras").is_file() and (Path(args.run) / "model.hoglbp.npz").is_file():
        print(f"{args.run}: a HOG+LBP run is shipped as .hoglbp.npz only (no TFLite/ONNX conversion); "
              f"ignoring --to {','.join(args.to)}", file=sys.stderr)
        formats = ()
    cal = from_dataset(ds, size=args.calib_size) if formats else None
    out = ship(args.run, args.name, ds, command=args.command or " ".join(sys.argv), usage=args.usage,
               out_dir=args.out, report_dir=args.report_dir, formats=formats, calibration=cal)
    for k, v in out.items():
        print(f"{k:10s} {v}")
    if args.float_dir:
        from emoedge.convert.ship import move_float_masters

        moved = move_float_masters(args.out, args.name, args.float_dir)
        print(f"moved {len(moved)} float master file(s) from {args.out} to {args.float_dir}")
    return 0


def cmd_models_card(args) -> int:
    """Rewrite a shipped model's card true to its folder: files beside it, the int8 file's evaluation."""
    from emoedge.convert.modelcard import refresh_card

    ev = refresh_card(args.dir, args.name, dataset(args), usage=args.usage)
    print(f"{Path(args.dir) / (args.name + '.md')}: headline {ev['model']} {ev['accuracy']:.2%} on {ev['data']} "
          f"{ev['split']} (n={ev['n']})")
    return 0


def cmd_models_fetch(args) -> int:
    from emoedge.edge.faces import fetch

    names = sorted(fetch.detector_files()) if args.name == "all" else [args.name]
    for name in names:
        for p in fetch.fetch(name, args.dest, base_url=args.base_url):
            print(f"{name}: {p} (sha256 verified)")
    return 0


def register(sub) -> None:
    from emoedge.core.shipped import MODELS_DIR, SHIPPED

    models = add_group(sub, "models", "shipped models: list, ship a training run, fetch detector files",
                       dest="models_command")
    p = add_parser(models, "list", "the shipped models: classes, passes and MACs per face, size, accuracy")
    p.add_argument("--files", action="store_true", help="also list each model's files")
    p.set_defaults(func=cmd_models_list)

    p = add_parser(models, "ship", "ship a training run as a shipped model (+ conversions) into --out")
    p.add_argument("--run", required=True, help="a training output folder (run.json, model.keras)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the model files, manifests, evaluation, run record and card go; to put the model "
                        "into the package of a source checkout: --out emoedge/edge/models (nothing is written "
                        "into the package otherwise)")
    p.add_argument("--report-dir", required=True, metavar="DIR",
                   help="where the reports go: quantization report, conversion summary, calibration and "
                        "reliability diagram (the repository keeps them in docs/models/NAME)")
    p.add_argument("--float-dir", help="move the float masters (.keras, float .tflite/.onnx) from --out to here "
                                       "after shipping: --out then holds only the quantized device files")
    p.add_argument("--name", required=True, choices=sorted(SHIPPED), help="the shipped name it replaces")
    p.add_argument("--data", required=True, help="the dataset to evaluate on (and calibrate from)")
    p.add_argument("--labels", default="auto", choices=LABEL_SETS, help="label set of a FER2013 CSV")
    p.add_argument("--usage", default="PublicTest", help="split the model card's scores come from")
    p.add_argument("--to", default="int8,uint8,edgetpu,onnx,onnx-int8", type=comma_list(),
                   help="formats to convert beside it (comma-separated; empty: none)")
    p.add_argument("--calib-size", type=int, default=300, help="calibration faces for the quantized formats")
    p.add_argument("--command", help="the training command to record in the model card (default: this command)")
    p.set_defaults(func=cmd_models_ship)

    p = add_parser(models, "card", "rewrite a shipped model's card from its folder (no retraining): the files "
                                  "beside it, the headline and result tables of its int8 file on --usage")
    p.add_argument("name", choices=sorted(SHIPPED), help="the shipped model")
    add_data_args(p)
    p.add_argument("--usage", default="PublicTest", help="split the card's scores come from")
    p.add_argument("--dir", default=str(MODELS_DIR), help="the folder holding the card and the model files")
    p.set_defaults(func=cmd_models_card)

    p = add_parser(models, "fetch", "download detector files (sha256 pinned)")
    p.add_argument("name", help="a detector that needs files (see emoedge.edge.faces.detect.DETECTORS), or all")
    p.add_argument("--dest", help="folder (default: $EMOEDGE_MODELS or ~/.cache/emoedge/models)")
    p.add_argument("--base-url", help="fetch from this mirror instead of the official location")
    p.set_defaults(func=cmd_models_fetch)
