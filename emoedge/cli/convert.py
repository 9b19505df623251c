"""``emoedge convert`` -> :func:`emoedge.convert.artifacts.convert_model` (+
:func:`emoedge.convert.report.quantization_report` with ``--report``)."""

from __future__ import annotations

from pathlib import Path

from emoedge.cli._common import LABEL_SETS, add_parser, comma_list
from emoedge.core.errors import BadInputError


def cmd_convert(args) -> int:
    from emoedge.convert.artifacts import convert_model, write_summary
    from emoedge.convert.calibration import load_calibration
    from emoedge.core.formats import FORMATS
    from emoedge.evaluate import model_class_names

    if args.report and not args.data:
        raise BadInputError("--report needs --data (a labelled dataset) to score the artifacts on")
    formats = args.to
    if formats == ["all"]:
        formats = [f for f, v in FORMATS.items() if v.converted and f != "keras"]
    cal = None
    if args.calib:
        cal = load_calibration(args.calib, size=args.calib_size, labels=args.labels)
        print(f"calibration: {len(cal)} faces from {cal.source} (fingerprint {cal.fingerprint[:12]}), "
              f"per class {cal.counts()}")
    from emoedge.cli._common import model_file

    args.model = str(model_file(args.model, "keras"))   # a shipped name: its float master
    names = args.class_names or model_class_names(args.model)
    if not names and cal is not None and cal.class_names:
        names = cal.class_names
        print(f"class names: {', '.join(names)} (no manifest beside {args.model}; taken from the calibration data)")
    if not names:
        raise BadInputError(f"{args.model}: no manifest with class names beside it; pass --class-names")
    out_dir = Path(args.out)
    results = convert_model(args.model, formats, out_dir, names, cal, stem=args.stem)
    for r in results:
        print(f"  {r.format:10s} {r.status:8s} {'' if r.path is None else r.path}"
              f"{'' if not r.size_bytes else f' ({r.size_bytes / 1024:.0f} KiB)'} {r.message}")
    write_summary(results, out_dir)
    if args.report:
        from emoedge.convert.report import quantization_report
        from emoedge.data.datasets import load_dataset

        ds = load_dataset(args.data, labels=args.labels)
        arts = [r.path for r in results if r.status == "ok" and r.path is not None and r.format != "keras"]
        quantization_report(args.model, arts, ds, args.usage, out_dir, cal, layers=cal is not None,
                            selective=args.selective)
        print((out_dir / "quantization_report.md").read_text())
        print(f"wrote {out_dir}/quantization_report.json, .md and per_class_accuracy.png")
    return 1 if any(r.status == "failed" for r in results) else 0


def register(sub) -> None:
    p = add_parser(sub, "convert", "Keras -> TFLite float32/float16/dynamic/int8/uint8, Edge TPU, ONNX")
    p.add_argument("--model", required=True,
                   help="the float Keras model, or a shipped name (default, fast, default@keras): its float master")
    p.add_argument("--to", default="int8", type=comma_list(),
                   help="comma-separated formats (float32, float16, dynamic, int8, uint8, edgetpu, onnx, onnx-int8) "
                        "or 'all'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--stem", help="artifact base name (default: the model file's)")
    p.add_argument("--class-names", type=comma_list(), help="comma-separated, if the model has no manifest")
    p.add_argument("--calib", help="calibration data: a dataset (its training split) or a folder of face images")
    p.add_argument("--calib-size", type=int, default=300, help="calibration faces (stratified by class)")
    p.add_argument("--labels", default="auto", choices=LABEL_SETS, help="label set of a FER2013 CSV (--calib, --data)")
    p.add_argument("--report", action="store_true", help="score every artifact against the float model")
    p.add_argument("--data", help="labelled dataset for --report")
    p.add_argument("--usage", default="PublicTest", help="split for --report")
    p.add_argument("--selective", action="store_true", help="also keep flagged layers in float and score that")
    p.set_defaults(func=cmd_convert)
