"""What the fleet store accepts from the broker: one interval as the devices publish it
(:func:`emoedge.edge.outputs.mqtt.interval_payload`), checked field by field before anything is written.

Anything else (not JSON, not an object, NaN or Infinity, a time that is not an integer, shares
that are not label -> number, text that is not UTF-8, a device that is not the topic's, a payload
over ``MAX_PAYLOAD_BYTES``) is refused with a one-line reason (:class:`PayloadError`): the
subscriber logs it, counts it and acknowledges the message, so a hostile message is neither stored
nor redelivered. Standard library only.
"""

from __future__ import annotations

import json
import math

MAX_PAYLOAD_BYTES = 32 * 1024     # a real interval is ~0.6 KB
MAX_ID_CHARS = 200                # interval ids, run ids, times
MAX_NAME_CHARS = 128              # device, room, model, label names
MAX_LABELS = 32
MAX_UNIX_NS = 2**63 - 1           # SQLite's INTEGER
TEXT = {"interval_id": MAX_ID_CHARS, "device": MAX_NAME_CHARS, "start_utc": MAX_ID_CHARS, "end_utc": MAX_ID_CHARS}
OPTIONAL_TEXT = {"room": MAX_NAME_CHARS, "model": MAX_NAME_CHARS, "run_id": MAX_ID_CHARS}
COUNTS = ("frames", "faces_seen", "face_observations")
REALS = ("duration_s", "uncertain_share", "mean_confidence")


class PayloadError(ValueError):
    """A message the store refuses; the message is one line and names the field."""


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _no_constant(name: str):
    raise PayloadError(f"{name} is not a number JSON allows")


def decode(payload: bytes) -> dict:
    """The JSON object of a message, or :class:`PayloadError` (size, encoding, syntax, NaN, nesting)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{len(payload)} bytes, over the {MAX_PAYLOAD_BYTES} byte limit")
    try:
        m = json.loads(payload, parse_constant=_no_constant)
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except PayloadError:
        raise
    except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(f"not JSON: {str(exc).splitlines()[0][:100]}") from None
    if not isinstance(m, dict):
        raise PayloadError(f"not a JSON object but {type(m).__name__} {_short(m)}")
    return m


def text(m: dict, key: str, limit: int, required: bool = True) -> str | None:
    v = m.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise PayloadError(f"{key} must be non-empty text, not {_short(v)}")
    if len(v) > limit:
        raise PayloadError(f"{key} is {len(v)} characters, over the limit of {limit}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{key} is not valid Unicode (a lone surrogate)") from None
    return v


def integer(m: dict, key: str, required: bool = True) -> int | None:
    v = m.get(key)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_UNIX_NS:
        raise PayloadError(f"{key} must be a whole number from 0 to 2^63-1, not {_short(v)}")
    return v


def real(m: dict, key: str) -> float | None:
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PayloadError(f"{key} must be a finite number, not {_short(v)}")
    return float(v)


def shares(v) -> dict[str, float]:
    """``share``: label -> a number in 0..1, at most ``MAX_LABELS`` labels."""
    if not isinstance(v, dict) or not v or len(v) > MAX_LABELS:
        raise PayloadError(f"share must be an object of 1 to {MAX_LABELS} label -> share, not {_short(v)}")
    out = {}
    for label, x in v.items():
        text({"label": label}, "label", MAX_NAME_CHARS)
        out[label] = real({"s": x}, "s")
        if out[label] is None or not 0.0 <= out[label] <= 1.0:
            raise PayloadError(f"share of {_short(label)} must be a number in 0..1, not {_short(x)}")
    return out


def interval_fields(m: dict) -> dict:
    """The stored fields of an interval message (or a stored row), each checked."""
    row = {k: text(m, k, n) for k, n in TEXT.items()}
    row.update({k: text(m, k, n, required=False) for k, n in OPTIONAL_TEXT.items()})
    row["start_unix_ns"], row["end_unix_ns"] = integer(m, "start_unix_ns"), integer(m, "end_unix_ns")
    if row["end_unix_ns"] < row["start_unix_ns"]:
        raise PayloadError("end_unix_ns is before start_unix_ns")
    row.update({k: integer(m, k, required=False) for k in COUNTS})
    row.update({k: real(m, k) for k in REALS})
    row["share"] = shares(m.get("share"))
    return row


def parse_interval(topic_device: str, payload: bytes) -> dict:
    """The checked fields of an interval published on ``<prefix>/<topic_device>/intervals``."""
    row = interval_fields(decode(payload))
    if row["device"] != topic_device:
        raise PayloadError(f"device {_short(row['device'])} is not the topic's device {_short(topic_device)}")
    return row
