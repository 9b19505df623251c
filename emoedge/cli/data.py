"""``emoedge data inspect`` -> :func:`emoedge.data.inspect.inspect` (+ ``write_report``)."""

from __future__ import annotations

from emoedge.cli._common import add_data_args, add_group, add_parser, dataset


def cmd_data_inspect(args) -> int:
    from emoedge.data.inspect import inspect, write_report

    ds = dataset(args)
    report = inspect(ds)
    print(report.text())
    if args.out:
        out = write_report(ds, report, args.out, plots=not args.no_plots)
        print(f"wrote {out}/inspect.json" + ("" if args.no_plots else ", class_distribution.png, samples.png"))
    return 0


def register(sub) -> None:
    data = add_group(sub, "data", "dataset tools", dest="data_command")
    p = add_parser(data, "inspect", "counts per class and split, blanks, duplicates, leaks, plots")
    add_data_args(p, positional=True)
    p.add_argument("--out", help="folder for inspect.json, class_distribution.png and samples.png")
    p.add_argument("--no-plots", action="store_true", help="write inspect.json only, no PNG plots")
    p.set_defaults(func=cmd_data_inspect)
