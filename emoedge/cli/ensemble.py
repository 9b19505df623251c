"""``emoedge ensemble``: ``--out NAME.keras`` -> :func:`emoedge.train.fusion.fuse_files`;
``--out DIR`` -> :func:`emoedge.benchmarks.ensemble_bench.evaluate_ensembles` (with ``--data``) or
:func:`emoedge.edge.inference.ensemble.write_spec`."""

from __future__ import annotations

import json
from pathlib import Path

from emoedge.cli._common import add_data_args, add_parser, comma_list, dataset
from emoedge.core.errors import BadInputError


def cmd_ensemble(args) -> int:
    if not str(args.out).endswith(".keras"):
        return _device_ensemble(args)
    bad = [m for m in args.models if not str(m).endswith((".keras", ".h5", ".hdf5"))]
    if bad:
        raise BadInputError(f"{bad[0]}: a fused .keras ensemble takes Keras members only; for TFLite/ONNX/HOG+LBP "
                         f"members give --out a folder (a device ensemble spec per --method)")
    if args.average and not args.data:
        raise BadInputError("--average re-estimates BatchNorm on the members' training faces: give --data")
    from emoedge.train.fusion import fuse_files

    ds = dataset(args) if args.data else None
    out = fuse_files(args.models, args.out, flip=args.flip, zoom_px=args.zoom, average=args.average,
                     dataset=ds, weights=args.weights, mean=args.mean)
    print(f"wrote {out}: {'weight average' if args.average else 'mean'}"
          f"{' of the scores before the softmax' if args.mean == 'logits' else ''} of {len(args.models)} model(s)"
          f"{' and their mirrored views' if args.flip else ''}"
          f"{f' and centre crops ({args.zoom} px in, scaled back)' if args.zoom else ''}")
    if ds is not None:
        from emoedge.benchmarks.ensemble_bench import compare_members, rows_table

        rows = compare_members(args.models, out, ds, args.usage)
        print(rows_table(rows, "ms/face (float TFLite, 1 thread)", code=False))
        Path(out).with_suffix(".members.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _device_ensemble(args) -> int:
    """Members of any format -> NAME-METHOD.ensemble.json specs (+ a report against the members with --data)."""
    from emoedge.edge.inference.ensemble import METHODS, write_spec

    methods = args.method or list(METHODS)
    if args.flip or args.zoom:
        raise BadInputError("--flip/--zoom fuse Keras members into one .keras model: give --out NAME.keras")
    if args.data:
        from emoedge.benchmarks.ensemble_bench import evaluate_ensembles, render_markdown

        res = evaluate_ensembles(args.models, dataset(args), args.usage, methods, args.out, args.name,
                                 num_threads=args.threads)
        print(render_markdown(res))
        print(f"wrote {args.out}/ensembles.json, ensembles.md and {len(res['specs'])} ensemble spec(s)")
        return 0
    if "stack" in methods:
        raise BadInputError("stacking is fitted on the validation split: give --data (or --method mean,vote)")
    from emoedge.evaluate import model_class_names

    names = model_class_names(args.models[0])
    if not names and not str(args.models[0]).endswith(".keras"):
        from emoedge.edge.inference.classify import open_model

        names = getattr(open_model(args.models[0]), "class_names", None)
    if not names:
        raise BadInputError(f"{args.models[0]}: no class names (no manifest beside it)")
    for m in methods:
        print("wrote", write_spec(Path(args.out) / f"{args.name}-{m}.ensemble.json", args.models, m, names))
    return 0


def register(sub) -> None:
    p = add_parser(sub, "ensemble", "combine models: a fused .keras (mean, optional mirror view), or device "
                                    "ensembles of any format by mean, vote and stacking, scored against members")
    p.add_argument("models", nargs="+", help="model files with the same classes (.keras for a fused .keras; any "
                                             "format of the table for a device ensemble)")
    p.add_argument("--flip", action="store_true", help="fused .keras only: also average each member on the mirror")
    p.add_argument("--weights", type=comma_list(float),
                   help="fused .keras only: comma-separated weight per member (default equal)")
    p.add_argument("--mean", choices=("probs", "logits"), default="probs",
                   help="fused .keras only: average the class probabilities or the scores before the "
                        "softmax, one softmax on their mean (members must end in a softmax)")
    p.add_argument("--average", action="store_true",
                   help="fused .keras only: average the members' weights (same architecture, e.g. snapshots of one "
                        "run) into one network, BatchNorm re-estimated on the training split of --data; --flip and "
                        "--zoom then add views of it")
    p.add_argument("--zoom", type=int, default=0, metavar="PX",
                   help="fused .keras only: also average every view's centre crop PX pixels in from each side, "
                        "scaled back to full size (0: off)")
    p.add_argument("--out", required=True, help="NAME.keras (fused Keras model) or a folder (device ensembles)")
    p.add_argument("--method", type=comma_list(),
                   help="device ensembles: comma-separated of mean,vote,stack (default all)")
    p.add_argument("--name", default="ensemble", help="device ensembles: file name stem")
    p.add_argument("--threads", type=int, default=1, help="threads for the latency per face")
    add_data_args(p, required=False)
    p.add_argument("--usage", default="PublicTest", help="split to compare members and ensemble on")
    p.set_defaults(func=cmd_ensemble)
