"""What the command modules share: one help formatter (defaults shown), argument types (so no
command parses a string itself) and the dataset options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# the names of emoedge.edge.faces.detect.DETECTORS, spelled here so that --help needs no OpenCV import
# (tests/evaluate/test_photos.py keeps them equal)
DETECTOR_NAMES = ("haar", "blazeface", "blazeface-full", "ssd")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except an unset one (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, []) or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def add_parser(sub, name: str, help: str, **kw) -> argparse.ArgumentParser:
    """A subcommand with ``help`` (the listing) as its description and defaults shown."""
    return sub.add_parser(name, help=help, description=kw.pop("description", help),
                          formatter_class=HelpFormatter, **kw)


def add_group(sub, name: str, help: str, dest: str):
    """A command group (``emoedge NAME SUBCOMMAND``): its subparsers, one of which is required."""
    p = add_parser(sub, name, help)
    return p.add_subparsers(dest=dest, required=True, title="commands", metavar="COMMAND")


# -- argument types -------------------------------------------------------------------------------
def comma_list(item: Callable = str) -> Callable[[str], list]:
    """``a,b,c`` -> [item(a), item(b), item(c)] (empty items dropped)."""
    def parse(text: str) -> list:
        try:
            return [item(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    parse.__name__ = f"comma-separated {getattr(item, '__name__', 'value')}s"
    return parse


def key_values(text: str) -> dict[str, str]:
    """``old=new,old2=new`` -> {"old": "new", "old2": "new"}."""
    out = {}
    for kv in (x for x in text.split(",") if x):
        old, sep, new = kv.partition("=")
        if not sep or not old:
            raise argparse.ArgumentTypeError(f"{kv!r}: expected old=new")
        out[old] = new
    return out


# -- models ---------------------------------------------------------------------------------------
def model_file(spec, fmt: str = "int8", missing_ok: bool = False):
    """The one resolver of every command's ``--model``: a file; a shipped name in ``fmt``; a shipped
    ``NAME@FORMAT``. A shipped name's ``keras`` is its float master (rebuilt from its int8 file,
    :func:`emoedge.train.masters.master_path`). A missing file raises ``ModelError``, or with
    ``missing_ok`` gives the path it would have (a benchmark records a failed row for it)."""
    from pathlib import Path

    from emoedge.core.errors import ModelError
    from emoedge.core.formats import get_format
    from emoedge.core.shipped import MODELS_DIR, SHIPPED, resolve_model

    s = str(spec)
    name, at, named_fmt = s.partition("@")
    if Path(s).exists() or (not at and name not in SHIPPED):
        return Path(s) if missing_ok else resolve_model(s)
    fmt = named_fmt if at else fmt
    if fmt == "keras" and name in SHIPPED:
        from emoedge.train.masters import master_path

        return master_path(name)
    try:
        return resolve_model(name, fmt)
    except ModelError:
        if not missing_ok:
            raise
        return MODELS_DIR / f"{name}{get_format(fmt).suffix}"


# -- datasets -------------------------------------------------------------------------------------
LABEL_SETS = ["auto", "fer2013", "ferplus", "ferplus7"]


def add_data_args(p: argparse.ArgumentParser, required: bool = True, positional: bool = False) -> None:
    if positional:
        p.add_argument("data", metavar="DATA",
                       help="FER2013 .csv/.csv.gz, or a folder tree root/<split>/<class>/*.png or root/<class>/*")
    else:
        p.add_argument("--data", required=required,
                       help="FER2013 .csv/.csv.gz, or a folder tree root/<split>/<class>/*.png or root/<class>/*")
    p.add_argument("--labels", default="auto", choices=LABEL_SETS,
                   help="label set of a FER2013 CSV: its own 7 classes, or the FER+ 8-class majority votes")
    p.add_argument("--votes", help="FER+ votes file (default: fer2013new.csv beside the CSV)")
    p.add_argument("--classes", type=comma_list(), help="keep only these classes, comma-separated, in this order")
    p.add_argument("--rename", type=key_values, help="rename/merge classes: old=new,old2=new")


def dataset(args: argparse.Namespace):
    """The dataset named by the options of :func:`add_data_args`."""
    from emoedge.data.datasets import load_dataset, select_classes

    ds = load_dataset(args.data, labels=args.labels, votes=getattr(args, "votes", None))
    keep, rename = getattr(args, "classes", None), getattr(args, "rename", None)
    return select_classes(ds, keep or None, rename or None) if keep or rename else ds
