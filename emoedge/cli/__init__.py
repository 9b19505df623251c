"""The ``emoedge`` command (also ``python -m emoedge``). Each subcommand is a thin shell over the
Python API; one module per command group:

    emoedge data inspect DATA          emoedge.cli.data     -> emoedge.data.inspect.inspect / write_report
    emoedge train --data D ...         emoedge.cli.train    -> emoedge.train.trainer.train
                                                               (config: emoedge.train.config_file.load_train_config)
    emoedge evaluate|calibrate|explain emoedge.cli.evaluate -> emoedge.evaluate.evaluate_model / calibrate / grad_cam
    emoedge convert --model M ...      emoedge.cli.convert  -> emoedge.convert.artifacts.convert_model
    emoedge ensemble A B --out ...     emoedge.cli.ensemble -> emoedge.train.fusion.fuse_files,
                                                               emoedge.benchmarks.ensemble_bench.evaluate_ensembles
    emoedge models list|ship|fetch     emoedge.cli.models   -> emoedge.core.shipped.shipped_models,
                                                               emoedge.convert.ship.ship, emoedge.edge.faces.fetch.fetch
    emoedge run|export|doctor|profile|classify
                                       emoedge.cli.run      -> emoedge.edge.runtime.pipeline.Pipeline(config).run(), ...
    emoedge bench models|pipeline|soak|all
                                       emoedge.cli.bench    -> emoedge.benchmarks.*

Logging is set up once here (``-v``/``-q``); exit codes come from :mod:`emoedge.core.errors`.
TensorFlow is imported only by the subcommands that need it (train, convert, Keras models).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from emoedge.cli import bench, convert, data, ensemble, evaluate, firstboot, fleet, models, run, train
from emoedge.cli._common import HelpFormatter
from emoedge.cli.bench import cmd_bench_soak  # noqa: F401  (tests take it from here)

__all__ = ["build_parser", "main"]

GROUPS = (data, train, evaluate, convert, ensemble, models, run, firstboot, fleet, bench)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("emoedge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emoedge", formatter_class=HelpFormatter,
                                 description="Facial emotion recognition for edge devices: train, convert, run "
                                             "on the device, benchmark.",
                                 epilog="exit codes: 0 done, 1 unexpected error, 2 bad input, 3 source lost, "
                                        "4 records not written, 130 interrupted")
    ap.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                    help="print the installed version and exit")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="more log output on stderr: -v info, -vv debug (default: warnings and errors)")
    ap.add_argument("-q", "--quiet", action="count", default=0,
                    help="less log output on stderr: -q errors only, -qq nothing")
    sub = ap.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return ap


class _StderrHandler(logging.Handler):
    """Log records to whatever sys.stderr is when they are emitted (the journal under systemd)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001  (logging must never end the run)
            self.handleError(record)


def _log_to_stderr(verbosity: int) -> None:
    """The "emoedge" logger to stderr at the level of ``verbosity`` (0: warnings; +1 per -v, -1 per
    -q); the handler is added once however often main() runs (tests, one process)."""
    level = {-2: logging.CRITICAL + 1, -1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-2, min(verbosity, 2)), logging.DEBUG)
    root = logging.getLogger("emoedge")
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("emoedge: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    handler.setLevel(level)
    root.setLevel(min(level, logging.CRITICAL))


def main(argv: list[str] | None = None) -> int:
    """Exit codes (``emoedge.core.errors``): 0 done, 1 unexpected error (traceback), 2 bad input,
    3 source lost, 4 records not written, 130 interrupted."""
    from emoedge.core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EmoedgeError

    args = build_parser().parse_args(argv)
    _log_to_stderr(args.verbose - args.quiet)
    try:
        return args.func(args)
    except EmoedgeError as exc:           # the project's own errors: a message naming what is wrong
        print(f"emoedge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emoedge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001  (anything else is a bug: its traceback, exit 1, systemd restarts)
        traceback.print_exc()
        print("emoedge: unexpected error (exit 1; the traceback above)", file=sys.stderr)
        return EXIT_INTERNAL
