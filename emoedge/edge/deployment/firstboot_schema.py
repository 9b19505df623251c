"""The first-boot file ``emoedge.yaml`` (on the SD card's FAT boot partition): its schema, read as
hostile input. :func:`parse_file` returns a frozen :class:`FirstBootFile` and every problem found
(never only the first): each :class:`Problem` names the key, what is wrong and how to fix it, so an
integrator with fifty cards can fix a file from the report alone. The checks that need the profile
(``emoedge profile check``'s) are in :mod:`emoedge.edge.deployment.firstboot`."""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from emoedge.core.errors import brief

FILE_NAME = "emoedge.yaml"
MAX_FILE_BYTES = 64 * 1024          # the example is ~4 KB; SSH keys are the largest part
MAX_SSH_KEYS = 32
MAX_SSH_KEY_CHARS = 16 * 1024       # an RSA 16384-bit key is ~2.8 KB of base64
MAX_TEXT_CHARS = 500
HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,3}$")
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
TOP_KEYS = ("profile", "device_id", "room", "purpose", "jurisdiction", "timezone", "mqtt", "wifi", "ssh_keys",
            "retention_days", "source", "extra")
MQTT_KEYS = ("url", "username", "password_file", "ca_file")
WIFI_KEYS = ("country", "ssid", "psk", "hidden")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: the key (dotted), what is wrong, and how to fix it."""
    key: str
    message: str
    fix: str = ""

    def line(self) -> str:
        return f"key '{self.key}': {self.message}" + (f"\n     fix: {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class MqttSettings:
    url: str
    username: str | None = None
    password_file: str | None = None   # a file name on the boot partition
    ca_file: str | None = None         # a file name on the boot partition


@dataclass(frozen=True)
class WifiSettings:
    country: str                       # ISO 3166 alpha-2 (the regulatory domain)
    ssid: str
    psk: str                           # a passphrase of 8..63 characters or the 64-hex-digit key
    hidden: bool = False


@dataclass(frozen=True)
class FirstBootFile:
    """The file's settings; with problems, the ones that were valid (a bad or missing one is None)."""
    profile: str | None
    device_id: str | None
    room: str | None = None
    purpose: str | None = None
    jurisdiction: str | None = None
    timezone: str | None = None
    mqtt: MqttSettings | None = None
    wifi: WifiSettings | None = None
    ssh_keys: tuple[str, ...] = ()
    retention_days: float | None = None
    source: str | None = None          # a video/image file name on the boot partition (instead of a camera)
    extra: tuple[str, ...] = ()        # SECTION.KEY=VALUE overrides, as `--set` takes them


class _Checker:
    """Collects problems while values are read; each getter returns None for a bad value."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, key: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(key, message, fix))

    def text(self, d: dict, key: str, name: str, required: bool = False, max_chars: int = MAX_TEXT_CHARS,
             fix: str = "") -> str | None:
        v = d.get(key)
        if v is None:
            if required:
                self.bad(name, "is required", fix)
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            self.bad(name, f"must be text, got {type(v).__name__} {brief(v, 60)}", fix)
            return None
        s = str(v).strip()
        if not s or len(s) > max_chars or not s.isprintable():
            self.bad(name, f"must be 1 to {max_chars} printable characters on one line, got {brief(v, 60)}", fix)
            return None
        return s


def unknown_keys(ck: _Checker, d: dict, allowed: tuple[str, ...], where: str, file: str) -> None:
    for k in sorted(set(map(str, d)) - set(allowed)):
        near = difflib.get_close_matches(k, allowed, n=1)
        ck.bad(f"{where}{k}", f"unknown key in {file} (allowed: {', '.join(allowed)})",
               f"did you mean '{where}{near[0]}'?" if near else "remove it (see emoedge.yaml.example)")


def boot_file(ck: _Checker, d: dict, key: str, name: str, boot: Path, what: str, max_bytes: int | None = None,
              missing_ok: bool = False) -> str | None:
    """A file name on the boot partition: relative, no '..', a regular file (unless ``missing_ok``)."""
    v = ck.text(d, key, name, max_chars=255)
    if v is None:
        return None
    rel = Path(v)
    if rel.is_absolute() or ".." in rel.parts:
        ck.bad(name, f"{v!r}: must name a file on the boot partition, relative to it (no leading / or ..)",
               f"copy {what} onto the boot partition beside emoedge.yaml and give its name, e.g. {rel.name!r}")
        return None
    p = boot / rel
    if not p.is_file():
        if not missing_ok:
            ck.bad(name, f"{v!r}: no such file on the boot partition ({p})",
                   f"copy {what} onto the boot partition beside emoedge.yaml")
        return v if missing_ok else None
    if max_bytes is not None and p.stat().st_size > max_bytes:
        ck.bad(name, f"{v!r} is larger than {max_bytes} bytes: not {what}")
        return None
    return v


def _ssh_key(ck: _Checker, line: object, i: int) -> str | None:
    name = f"ssh_keys[{i}]"
    fix = "paste one line of ~/.ssh/id_ed25519.pub (TYPE BASE64 [COMMENT]), e.g. from ssh-keygen -t ed25519"
    if not isinstance(line, str) or not line.strip() or len(line) > MAX_SSH_KEY_CHARS or not line.isprintable():
        ck.bad(name, f"must be one OpenSSH public key line, got {brief(line, 60)}", fix)
        return None
    parts = line.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        ck.bad(name, f"not an OpenSSH public key ({brief(line, 40)}): the line starts with the key type, one of "
                     f"{', '.join(SSH_KEY_TYPES)} (options before the type are not accepted here)", fix)
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        ck.bad(name, f"the key data of {parts[0]} is not base64", fix)
        return None
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4:4 + n] != parts[0].encode():
        ck.bad(name, f"the key data does not hold a {parts[0]} key (truncated or pasted wrong)", fix)
        return None
    return " ".join(parts)


def _ssh_keys(ck: _Checker, v: object) -> tuple[str, ...]:
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or len(items) > MAX_SSH_KEYS:
        ck.bad("ssh_keys", f"must be one public key line or a list of at most {MAX_SSH_KEYS}, got {brief(v, 60)}")
        return ()
    keys = [_ssh_key(ck, line, i) for i, line in enumerate(items)]
    return tuple(k for k in keys if k is not None)


def _mqtt(ck: _Checker, v: object, boot: Path, file: str) -> MqttSettings | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = {"url": v}
    if not isinstance(v, dict):
        ck.bad("mqtt", f"must be a mapping (url, username, password_file, ca_file), got {brief(v, 60)}")
        return None
    unknown_keys(ck, v, MQTT_KEYS, "mqtt.", file)
    fix = "mqtt://HOST[:PORT][/PREFIX], or mqtts://HOST[:PORT][/PREFIX] for TLS (port 8883 by default)"
    url = ck.text(v, "url", "mqtt.url", required=True, fix=fix)
    if url is not None:
        from emoedge.edge.outputs.mqtt_broker import MqttTarget

        try:
            target = MqttTarget.parse(url)
        except ValueError as exc:
            ck.bad("mqtt.url", str(exc).replace("--mqtt ", ""), fix)
            url = None
        else:
            if target.password:
                ck.bad("mqtt.url", "holds a password: the URL is shown in logs and reports",
                       "put the password in a file on the boot partition and name it in mqtt.password_file")
                url = None
    user = ck.text(v, "username", "mqtt.username", max_chars=128)
    pw = boot_file(ck, v, "password_file", "mqtt.password_file", boot, "the broker password file", 4096,
                   missing_ok=True)
    ca = boot_file(ck, v, "ca_file", "mqtt.ca_file", boot, "the broker's CA certificate (PEM)", 1 << 20)
    return MqttSettings(url, user, pw, ca) if url is not None else None


def _wifi(ck: _Checker, v: object, file: str) -> WifiSettings | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        ck.bad("wifi", f"must be a mapping (country, ssid, psk, hidden), got {brief(v, 60)}")
        return None
    unknown_keys(ck, v, WIFI_KEYS, "wifi.", file)
    country = ck.text(v, "country", "wifi.country", required=True, max_chars=2,
                      fix="the two-letter ISO 3166 country code where the box runs, e.g. GB, DE, US")
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        ck.bad("wifi.country", f"{country!r} is not a two-letter upper-case country code", "e.g. GB, DE, US")
        country = None
    ssid = ck.text(v, "ssid", "wifi.ssid", required=True, max_chars=32, fix="the network's name (SSID)")
    if ssid is not None and len(ssid.encode()) > 32:
        ck.bad("wifi.ssid", "is longer than 32 bytes (UTF-8), the most an SSID holds")
        ssid = None
    psk = v.get("psk")
    ok = isinstance(psk, str) and (re.fullmatch(r"[0-9a-fA-F]{64}", psk) is not None
                                   or (8 <= len(psk) <= 63 and all(32 <= ord(c) < 127 for c in psk)))
    if not ok:
        ck.bad("wifi.psk", "must be the WPA passphrase (8 to 63 printable ASCII characters) or the 64-hex-digit key "
                           "(wpa_passphrase's psk=)", "quote it in the YAML: psk: \"my pass phrase\"")
    hidden = v.get("hidden", False)
    if not isinstance(hidden, bool):
        ck.bad("wifi.hidden", f"must be true or false, got {brief(hidden, 40)}")
    if country is None or ssid is None or not ok or not isinstance(hidden, bool):
        return None
    return WifiSettings(country, ssid, psk, hidden)


def _extra(ck: _Checker, v: object) -> tuple[str, ...]:
    """``extra``: a list of SECTION.KEY=VALUE strings, or a mapping of SECTION.KEY (or SECTION: {KEY: ...})."""
    import json

    if v is None:
        return ()
    out: list[str] = []
    if isinstance(v, list):
        for i, item in enumerate(v):
            if not isinstance(item, str) or "=" not in item:
                ck.bad(f"extra[{i}]", f"must be SECTION.KEY=VALUE, got {brief(item, 60)}",
                       "e.g. runtime.interval_s=60 (the same as emoedge run --set)")
            else:
                out.append(item)
    elif isinstance(v, dict):
        for k, val in v.items():
            if isinstance(val, dict) and "." not in str(k):
                out += [f"{k}.{k2}={json.dumps(v2)}" for k2, v2 in val.items()]
            else:
                out.append(f"{k}={json.dumps(val)}")
    else:
        ck.bad("extra", f"must be a list of SECTION.KEY=VALUE or a mapping, got {brief(v, 60)}")
    for ov in out:
        key = ov.partition("=")[0].strip()
        if key.count(".") != 1 or key.split(".")[0] not in ("board", "runtime", "deployment"):
            ck.bad(f"extra.{key}", "must be SECTION.KEY with section board, runtime or deployment",
                   "e.g. runtime.interval_s (see emoedge profile show PROFILE for the keys)")
    return tuple(out)


def parse_data(d: object, boot: Path, zoneinfo: Path, file: str = FILE_NAME) -> tuple[FirstBootFile | None,
                                                                                      list[Problem]]:
    """The file's settings (None only when it is not a mapping; with problems, the valid ones) and every
    problem found."""
    ck = _Checker()
    if not isinstance(d, dict):
        ck.bad("(top level)", f"{file} must be a mapping of keys (profile: ..., device_id: ...), got "
                              f"{type(d).__name__}", "start from emoedge.yaml.example")
        return None, ck.problems
    unknown_keys(ck, d, TOP_KEYS, "", file)
    profile = ck.text(d, "profile", "profile", required=True, max_chars=64,
                      fix="a profile name: classroom-sensor-rpi4, kiosk-rpi4, rpi4, ... (emoedge profile list)")
    device = ck.text(d, "device_id", "device_id", required=True, max_chars=63,
                     fix="a host name: lower-case letters, digits and hyphens, e.g. room12-sensor")
    if device is not None and not HOSTNAME_RE.match(device):
        ck.bad("device_id", f"{device!r} is not a host name (it becomes the box's host name and MQTT device id)",
               "1 to 63 lower-case letters, digits and hyphens, not starting or ending with a hyphen")
        device = None
    room = ck.text(d, "room", "room", max_chars=128)
    purpose = ck.text(d, "purpose", "purpose")
    jurisdiction = ck.text(d, "jurisdiction", "jurisdiction", max_chars=64)
    tz = ck.text(d, "timezone", "timezone", max_chars=64)
    if tz is not None and not (ZONE_RE.match(tz) and (zoneinfo / tz).is_file()):
        ck.bad("timezone", f"{tz!r} is not an IANA time zone of this image (none in {zoneinfo})",
               "a name such as Europe/London, America/New_York or UTC (timedatectl list-timezones)")
        tz = None
    ret = d.get("retention_days")
    if ret is not None and (isinstance(ret, bool) or not isinstance(ret, (int, float)) or not 0 < ret <= 36500):
        ck.bad("retention_days", f"must be a number of days above 0 (at most 36500), got {brief(ret, 40)}",
               "e.g. 120 (stored summaries older than this are deleted)")
    source = boot_file(ck, d, "source", "source", boot, "the video file")
    parts = dict(mqtt=_mqtt(ck, d.get("mqtt"), boot, file), wifi=_wifi(ck, d.get("wifi"), file),
                 ssh_keys=_ssh_keys(ck, d.get("ssh_keys")), extra=_extra(ck, d.get("extra")))
    ret = ret if not any(p.key == "retention_days" for p in ck.problems) else None
    return FirstBootFile(profile, device, room, purpose, jurisdiction, tz, retention_days=ret, source=source,
                         **parts), ck.problems
