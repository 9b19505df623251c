"""Home Assistant MQTT discovery for a box (``emoedge run --mqtt ... --ha-discovery [PREFIX]``): the
retained *device-based* discovery config (Home Assistant 2024.11 and later) that makes a box appear in
Home Assistant without hand-written YAML. Pure functions and plain data: no paho, no network; the
MQTT sink (emoedge.edge.outputs.mqtt) publishes the message this module builds.

What Home Assistant is told, after its MQTT integration documentation ("Device discovery payload"),
with the documented key abbreviations throughout (``dev``, ``o``, ``cmps``, ``p``, ``uniq_id`` ...):

- topic ``PREFIX/device/<object_id>/config`` (``<object_id>``: ``[a-zA-Z0-9_-]`` only), retained, QoS 1;
- ``dev``: one device per box: ``ids`` from the device id, ``name`` the device id, ``mf``/``mdl``/``sw``
  emoedge (and the model it runs) and its version, ``sa`` (suggested area) the room;
- ``o`` (origin, required by device discovery): emoedge and its version;
- shared by every component: ``stat_t`` the box's intervals topic (``<prefix>/<device>/intervals``),
  ``avty`` its retained status topic (``online``; ``offline`` at a clean stop and as the last will);
- ``cmps``: one ``sensor`` per label share (``%``, ``stat_cla: measurement``), the uncertain share and
  the faces seen in the interval, each with its ``uniq_id`` (device + label), a ``val_tpl`` reading the
  interval JSON (a share x 100, rounded to 0.1; ``None``, Home Assistant's "unknown", for an interval
  without faces, where a share means nothing) and ``exp_aft`` (3 intervals, at least 60 s): a box that
  stops publishing shows unavailable even when its last will never arrives.

Home Assistant announces itself with ``online`` on ``PREFIX/status``; the sink publishes the config
again then and on every reconnect. To remove a box from Home Assistant, publish an empty retained
message to its config topic (``mosquitto_pub -r -n -t PREFIX/device/<object_id>/config``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from emoedge.core.errors import BadInputError

DEFAULT_PREFIX = "homeassistant"
MAX_PREFIX_CHARS = 128
MAX_NAME_CHARS = 128           # a device id, a room, a model name in the config
MAX_LABEL_CHARS = 64
MAX_LABELS = 64
MAX_CONFIG_BYTES = 64 * 1024   # one retained message per box (~0.3 KiB per label; < 45 KiB at every bound)
MIN_EXPIRE_S = 60
EXPIRE_INTERVALS = 3
UNCERTAIN = "uncertain"
AVAILABLE, NOT_AVAILABLE = "online", "offline"    # the sink's retained status payloads

_OBJECT_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")
# a label goes into a Jinja string literal: no quotes, backslashes, braces, '%', '#' or control characters
_LABEL_OK = re.compile(r"[^\x00-\x1f\x7f\"'\\{}%#]+")


@dataclass(frozen=True)
class HaDiscovery:
    """The discovery message of one box: its config ``topic`` and JSON ``payload`` (UTF-8, retained,
    QoS 1), and ``ha_status_topic``, where Home Assistant says ``online`` when it (re)starts."""
    topic: str
    payload: bytes
    ha_status_topic: str
    object_id: str
    components: int


def check_prefix(prefix: str, where: str = "key 'mqtt_ha_discovery' (--ha-discovery)") -> str:
    """``prefix`` if it is a usable discovery prefix (a topic without wildcards, NUL, empty levels or a
    leading ``$``, at most MAX_PREFIX_CHARS), else a :class:`BadInputError` saying ``where``."""
    if not isinstance(prefix, str) or not prefix:
        raise BadInputError(f"{where}: the Home Assistant discovery prefix must be a non-empty topic, "
                            f"got {prefix!r} (default {DEFAULT_PREFIX})")
    bad = [c for c in ("+", "#", "\x00") if c in prefix]
    if bad or len(prefix) > MAX_PREFIX_CHARS or prefix.startswith("$") or "" in prefix.split("/"):
        raise BadInputError(f"{where}: the Home Assistant discovery prefix {prefix[:MAX_PREFIX_CHARS]!r} must be "
                            f"a topic of at most {MAX_PREFIX_CHARS} characters without the wildcards + and #, NUL, "
                            f"empty levels (a leading, trailing or double /) or a leading $ (default "
                            f"{DEFAULT_PREFIX})")
    return prefix


def check_name(value: str | None, what: str) -> str | None:
    """A device id, room or model name bounded for the config: printable, at most MAX_NAME_CHARS."""
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadInputError(f"{what} {value[:MAX_NAME_CHARS]!r}: must be 1 to {MAX_NAME_CHARS} printable "
                            f"characters (it names the box in Home Assistant)")
    return value


def object_id(text: str) -> str:
    """``text`` in Home Assistant's ``[a-zA-Z0-9_-]``: other characters become ``_``, and a short hash
    of the original is added when any was replaced (``a.b`` and ``a_b`` stay two ids)."""
    clean = _OBJECT_ID_BAD.sub("_", text)
    if clean != text:
        clean += "_" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return clean


def expire_after_s(interval_s: float) -> int:
    """Seconds after which Home Assistant shows a sensor unavailable without a new interval: three
    intervals, at least MIN_EXPIRE_S (a late interval is not a dead box)."""
    return max(MIN_EXPIRE_S, math.ceil(EXPIRE_INTERVALS * interval_s))


def share_template(label: str | None) -> str:
    """The value template of a label's share in percent (``None``: the uncertain share)."""
    value = "value_json.uncertain_share" if label is None else f"value_json.share[{json.dumps(label)}]"
    return f"{{{{ ({value} * 100) | round(1) if value_json.face_observations else None }}}}"


FACES_TEMPLATE = "{{ value_json.faces_seen }}"


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The model's class names, checked for the config (``uncertain`` is its own sensor)."""
    out = tuple(dict.fromkeys(lb for lb in labels if lb != UNCERTAIN))
    if not out or len(out) > MAX_LABELS:
        raise BadInputError(f"--ha-discovery: the model has {len(out)} class name(s); 1 to {MAX_LABELS} can be "
                            f"Home Assistant sensors")
    for lb in out:
        if not isinstance(lb, str) or len(lb) > MAX_LABEL_CHARS or not _LABEL_OK.fullmatch(lb):
            raise BadInputError(f"--ha-discovery: the model's class name {str(lb)[:MAX_LABEL_CHARS]!r} cannot name a "
                                f"Home Assistant sensor: 1 to {MAX_LABEL_CHARS} characters without quotes, "
                                f"backslashes, braces, % or #")
    return out


def _sensor(name: str, uid: str, template: str, unit: str, icon: str, expire_s: int) -> dict:
    return {"p": "sensor", "name": name, "uniq_id": uid, "val_tpl": template, "unit_of_meas": unit,
            "stat_cla": "measurement", "exp_aft": expire_s, "ic": icon, "qos": 1}


def components(device_oid: str, labels: Sequence[str], expire_s: int) -> dict[str, dict]:
    """``cmps``: a sensor per label share, the uncertain share and the faces seen; keys and unique ids
    unique (a label's key gets a hash where sanitising it made two labels alike)."""
    cmps: dict[str, dict] = {}
    for lb in labels:
        key = "share_" + object_id(lb)
        if key in cmps:
            key += "_" + hashlib.sha1(lb.encode()).hexdigest()[:6]
        cmps[key] = _sensor(f"{lb[:1].upper()}{lb[1:]} share", f"{device_oid}_{key}", share_template(lb), "%",
                            "mdi:emoticon-outline", expire_s)
    cmps["uncertain_share"] = _sensor("Uncertain share", f"{device_oid}_uncertain_share", share_template(None), "%",
                                      "mdi:help-circle-outline", expire_s)
    cmps["faces"] = _sensor("Faces", f"{device_oid}_faces", FACES_TEMPLATE, "faces", "mdi:account-group", expire_s)
    return cmps


def discovery_config(device: str, labels: Sequence[str], state_topic: str, availability_topic: str,
                     interval_s: float, room: str | None = None, model: str = "", sw_version: str = "") -> dict:
    """The device discovery payload of one box (see the module), as a dict."""
    check_name(device, "MQTT device id")
    check_name(room, "MQTT room")
    dev_oid = "emoedge_" + object_id(device)
    model = (model or "")[:MAX_NAME_CHARS]
    dev = {"ids": [dev_oid], "name": device, "mf": "emoedge", "mdl": f"emoedge ({model})" if model else "emoedge"}
    if sw_version:
        dev["sw"] = sw_version
    if room:
        dev["sa"] = room
    origin = {"name": "emoedge", **({"sw": sw_version} if sw_version else {})}
    return {"dev": dev, "o": origin,
            "cmps": components(dev_oid, check_labels(labels), expire_after_s(interval_s)),
            "stat_t": state_topic, "qos": 1,
            "avty": [{"t": availability_topic, "pl_avail": AVAILABLE, "pl_not_avail": NOT_AVAILABLE}]}


def discovery_message(prefix: str, device: str, labels: Sequence[str], state_topic: str, availability_topic: str,
                      interval_s: float, room: str | None = None, model: str = "",
                      sw_version: str = "") -> HaDiscovery:
    """The retained message that announces one box to Home Assistant under discovery ``prefix``."""
    check_prefix(prefix)
    config = discovery_config(device, labels, state_topic, availability_topic, interval_s, room, model, sw_version)
    payload = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
    if len(payload) > MAX_CONFIG_BYTES:
        raise BadInputError(f"--ha-discovery: the discovery config of {device!r} is {len(payload)} bytes, over "
                            f"{MAX_CONFIG_BYTES} (a shorter topic prefix, fewer or shorter class names)")
    oid = config["dev"]["ids"][0]
    return HaDiscovery(f"{prefix}/device/{oid}/config", payload, f"{prefix}/status", oid, len(config["cmps"]))


def emoedge_version() -> str:
    """The installed emoedge's version ("" when it is not installed as a distribution)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emoedge")
    except PackageNotFoundError:
        return ""
