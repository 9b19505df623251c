"""A deployment profile's ``board.detector_ms`` and ``board.classifier_ms`` rewritten with a board's
stage times (``emoedge bench board --write-profile``, ``--estimate --update-profiles``), the comment
above them saying where the times come from; the rest of the YAML file kept as it is."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from emoedge.benchmarks.board_measure import CLASSIFIER_STAGES, DETECTOR_STAGES
from emoedge.core.errors import BadInputError

# The board each profile file (firmware_configs/NAME.yaml, by NAME) holds the times of.
BOARD_PROFILES = {"rpi4": "rpi4", "rpi5": "rpi5", "rpi-zero2w": "rpi-zero2w", "coral-devboard": "coral-devboard"}

DETECTOR_MS_LINE = re.compile(r"^(?P<indent>[ \t]*)detector_ms:.*$", re.M)
CLASSIFIER_MS_LINE = re.compile(r"\n[ \t]*classifier_ms:[^\n]*")   # the line right after detector_ms


def write_profile_times(profile: Path, ms: dict[str, float], comment: list[str],
                        classifier_ms: dict[str, float] | None = None) -> str:
    """Rewrite ``board.detector_ms`` of a profile file with ``ms`` (rounded up to whole ms), the comment
    lines directly above it replaced by ``comment``, and ``board.classifier_ms`` (ms per face, one decimal)
    on the line after it when given; everything else in the file is kept as it is."""
    text = profile.read_text()
    m = DETECTOR_MS_LINE.search(text)
    if not m:
        raise ValueError(f"{profile}: no 'detector_ms:' line to replace (add `detector_ms: {{}}` under board:)")
    indent = m.group("indent")
    lines = text[:m.start()].split("\n")
    tail = lines.pop()                   # the (empty) start of the detector_ms line
    while lines and lines[-1].strip().startswith("#") and lines[-1].startswith(indent + "#"):
        lines.pop()
    values = ", ".join(f"{k}: {int(np.ceil(v))}" for k, v in ms.items())
    head = "\n".join(lines + [f"{indent}# {c}" for c in comment]) + "\n" + tail
    rest = text[m.end():]
    if classifier_ms:
        old = CLASSIFIER_MS_LINE.match(rest)
        rest = rest[old.end():] if old else rest
        per_face = ", ".join(f"{k}: {round(v, 1):g}" for k, v in classifier_ms.items())
        rest = f"\n{indent}classifier_ms: {{{per_face}}}   # per face" + rest
    new = head + f"{indent}detector_ms: {{{values}}}" + rest
    profile.write_text(new)
    return new


def estimate_comment(board: str, result: dict) -> list[str]:
    """The comment above an estimated profile's times: where they come from."""
    ratio = result["board_ratios"][board]
    f = result["factors"]
    return [f"ESTIMATES ({result['date']}, not measured on this board): docs/benchmarks/pi-timings/estimates.md.",
            "Time on the development machine (1 thread) x published Pi 4 time / the same workload there:",
            f"Haar x {f['haar-ref']:.1f} (cv_facedetection_eval), CNNs x {f['cnn-ref']:.1f} "
            "(aallan/benchmarking-ml-on-the-edge);",
            f"this board = {ratio:.2f} x a Pi 4" + (" (published runs)." if board != "rpi4" else ".")
            + " On the board: `emoedge bench board --write-profile` this file.",
            ]


def _split(times: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Stage times -> (the detectors', the classifiers')."""
    return ({k: v for k, v in times.items() if k in DETECTOR_STAGES},
            {k: v for k, v in times.items() if k in CLASSIFIER_STAGES})


def write_estimated_profile(profile: str | Path, result: dict) -> str:
    """Rewrite ``profile`` (a board's, by its file name: :data:`BOARD_PROFILES`) with that board's
    estimates from ``result`` (:func:`emoedge.benchmarks.board_timings.estimate`); returns the board."""
    board = next((b for b, prof in BOARD_PROFILES.items() if prof == Path(profile).stem), None)
    if board is None:
        raise BadInputError(f"{profile}: not a profile of a board with estimates ({', '.join(BOARD_PROFILES)})")
    detector_ms, classifier_ms = _split({x["stage"]: x["ms"] for x in result["rows"] if x["board"] == board})
    write_profile_times(Path(profile), detector_ms, estimate_comment(board, result), classifier_ms)
    return board


def write_measured_profile(profile: str | Path, result: dict, threads: int, csv_path: Path) -> None:
    """Rewrite ``profile`` with the times measured on this board (``result``:
    :func:`emoedge.benchmarks.board_measure.measure`, written to ``csv_path``)."""
    detector_ms, classifier_ms = _split({x["stage"]: x["ms"] for x in result["rows"]})
    board = result["rows"][0]["board"] if result["rows"] else "this machine"
    write_profile_times(Path(profile), detector_ms, [
        f"MEASURED {result['date']} on {board}",
        f"by `emoedge bench board` ({threads} threads, 640x360 frames, full scale): {csv_path}"], classifier_ms)
