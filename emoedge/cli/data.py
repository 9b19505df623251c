"""``emoedge data inspect`` -> :func:`emoedge.data.inspect.inspect` (+ ``write_report``);
``emoedge data export`` -> :func:`emoedge.data.datasets.write_folder`."""

from __future__ import annotations

from emoedge.cli._common import add_data_args, add_group, add_parser, dataset, key_values
from emoedge.core.errors import BadInputError


def cmd_data_inspect(args) -> int:
    from emoedge.data.inspect import inspect, write_report

    ds = dataset(args)
    report = inspect(ds)
    print(report.text())
    if args.out:
        out = write_report(ds, report, args.out, plots=not args.no_plots)
        print(f"wrote {out}/inspect.json" + ("" if args.no_plots else ", class_distribution.png, samples.png"))
    return 0


def cmd_data_export(args) -> int:
    from emoedge.data.datasets import canonical_split, write_folder

    ds = dataset(args)
    try:
        caps = {canonical_split(k): int(v) for k, v in (args.per_class or {}).items()}
    except ValueError:
        raise BadInputError(f"emoedge data export: --per-class {args.per_class}: "
                         "each value must be a whole number") from None
    written = write_folder(ds, args.out, caps, seed=args.seed)
    for split, counts in written.items():
        print(f"{args.out}/{split}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0


def register(sub) -> None:
    data = add_group(sub, "data", "dataset tools", dest="data_command")
    p = add_parser(data, "inspect", "counts per class and split, blanks, duplicates, leaks, plots")
    add_data_args(p, positional=True)
    p.add_argument("--out", help="folder for inspect.json, class_distribution.png and samples.png")
    p.add_argument("--no-plots", action="store_true", help="write inspect.json only, no PNG plots")
    p.set_defaults(func=cmd_data_inspect)

    p = add_parser(data, "export", "write a dataset (e.g. some classes of the FER2013 CSV) as a folder tree "
                                   "OUT/<split>/<class>/*.png, the layout `emoedge train --data` reads")
    add_data_args(p, positional=True)
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--per-class", type=key_values, metavar="SPLIT=N,...",
                   help="at most N faces of each class in that split, drawn at random, e.g. Training=600 "
                        "(a split not named is written whole)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw (default: 0)")
    p.set_defaults(func=cmd_data_export)
