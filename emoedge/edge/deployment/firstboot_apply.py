"""Applying a checked first-boot file all at once: a :class:`Plan` of files, symbolic links, folders and
removals under a root (``/`` on the box, a temporary folder in tests), executed by :func:`execute` in
two phases (every file and link is first written beside its target under a temporary name, then all
are renamed into place), so a failure while writing (a full disk) leaves the old configuration whole.
Also the contents of the system files the first-boot file sets: host name, time zone, Wi-Fi
(wpa_supplicant@wlan0 + a systemd-networkd ``.network`` file, as Debian's own images do it) and
root's SSH keys."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from emoedge.core.errors import WriteError

DEVICE_PROFILE = "/etc/emoedge/device.yaml"      # the profile a first-boot file becomes
MARKER = "/etc/emoedge/firstboot.ok"             # present while a good file is applied: the services' condition
SERVICES = ("emoedge-sensor.service", "emoedge-kiosk.service")
FIRSTBOOT_UNIT = "emoedge-firstboot.service"
SSH_BEGIN = "# --- emoedge.yaml ssh_keys (managed by emoedge firstboot; edit emoedge.yaml) ---"
SSH_END = "# --- end of emoedge.yaml ssh_keys ---"
WPA_CONF = "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
NETWORK_FILE = "/etc/systemd/network/50-emoedge-wlan0.network"
WPA_UNIT = "wpa_supplicant@wlan0.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"


@dataclass(frozen=True)
class FileWrite:
    path: str                  # absolute on the box, e.g. /etc/hostname
    data: bytes
    mode: int = 0o644
    owner: str | None = None   # a user of the box's /etc/passwd (None: whoever runs this, i.e. root)


@dataclass(frozen=True)
class Link:
    path: str
    target: str


@dataclass
class Plan:
    """What an apply changes, said before anything is touched (the report lists it)."""
    writes: list[FileWrite] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    dirs: list[tuple[str, str | None, int]] = field(default_factory=list)  # (path, owner, mode) made if missing
    removes: list[str] = field(default_factory=list)                   # files or links, if present

    def write(self, path: str, text: str | bytes, mode: int = 0o644, owner: str | None = None) -> None:
        self.writes.append(FileWrite(path, text.encode() if isinstance(text, str) else text, mode, owner))


def under(root: Path, path: str) -> Path:
    """``path`` (absolute on the box) inside ``root``."""
    return root / PurePosixPath(path).relative_to("/")


def user_ids(root: Path, user: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` in ROOT/etc/passwd (the box's, not this machine's), or None."""
    try:
        lines = under(root, "/etc/passwd").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split(":")
        if len(f) >= 4 and f[0] == user and f[2].isdigit() and f[3].isdigit():
            return int(f[2]), int(f[3])
    return None


def _chown(root: Path, p: Path, owner: str | None) -> None:
    """Give ``p`` to ``owner`` when running as root (on the box); a test run as a user keeps its own."""
    if owner is None or os.geteuid() != 0:
        return
    ids = user_ids(root, owner)
    if ids is None:
        raise WriteError(f"{p}: user {owner!r} is not in {under(root, '/etc/passwd')}: the image lacks it")
    os.chown(p, *ids, follow_symlinks=False)


def execute(plan: Plan, root: Path) -> None:
    """Stage everything beside its target, then rename it all into place, then remove; a failure while
    staging removes what was staged and changes nothing (a :class:`WriteError` naming the file)."""
    staged: list[tuple[Path, Path]] = []
    try:
        for d, owner, mode in plan.dirs:
            p = under(root, d)
            if not p.is_dir():
                p.mkdir(parents=True)
                os.chmod(p, mode)
            _chown(root, p, owner)      # also one that exists (e.g. /var/lib/emoedge, made by root for the state)
        for w in plan.writes:
            target = under(root, w.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent)
            staged.append((Path(tmp), target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(w.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, w.mode)
            _chown(root, Path(tmp), w.owner)
        for ln in plan.links:
            target = under(root, ln.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".{target.name}.{os.getpid()}.link"
            tmp.unlink(missing_ok=True)
            os.symlink(ln.target, tmp)
            staged.append((tmp, target))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise WriteError(f"{getattr(exc, 'filename', None) or root}: could not write the configuration "
                         f"({exc.strerror or exc}); nothing was changed") from exc
    for tmp, target in staged:
        if target.is_dir() and not target.is_symlink():
            raise WriteError(f"{target}: a folder is in the way of a file the first-boot file writes")
        os.replace(tmp, target)
    for r in plan.removes:
        under(root, r).unlink(missing_ok=True)
    os.sync()   # the renames on the card (pulled at the wrong time, it keeps the old or the new file)


# -- the contents of the system files ---------------------------------------------------------------

def hosts_text(old: str, hostname: str) -> str:
    """/etc/hosts with Debian's ``127.0.1.1 HOSTNAME`` line set (others kept; a minimal file if none)."""
    lines = [ln for ln in old.splitlines() if ln.split("#")[0].split()[:1] != ["127.0.1.1"]]
    if not any(ln.split()[:1] == ["127.0.0.1"] for ln in lines):
        lines.insert(0, "127.0.0.1\tlocalhost")
    idx = next((i + 1 for i, ln in enumerate(lines) if ln.split()[:1] == ["127.0.0.1"]), 0)
    lines.insert(idx, f"127.0.1.1\t{hostname}")
    return "\n".join(lines) + "\n"


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The 256-bit WPA key of a passphrase (as ``wpa_passphrase`` computes it: PBKDF2-HMAC-SHA1, 4096
    rounds, the SSID as salt), so the passphrase itself is not written onto the root file system."""
    if len(passphrase) == 64:
        return passphrase.lower()
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def wpa_conf(country: str, ssid: str, psk: str, hidden: bool) -> str:
    """wpa_supplicant-wlan0.conf (read by wpa_supplicant@wlan0.service); the SSID hex-encoded, so no
    character of it needs quoting."""
    return ("# written by emoedge firstboot from emoedge.yaml on the boot partition: edit that file, not this one\n"
            "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n"
            f"country={country}\n\n"
            "network={\n"
            f"\tssid={ssid.encode().hex()}\n"
            f"\tpsk={wpa_psk(ssid, psk)}\n"
            "\tkey_mgmt=WPA-PSK\n"
            + ("\tscan_ssid=1\n" if hidden else "") +
            "}\n")


NETWORK_TEXT = ("# written by emoedge firstboot (emoedge.yaml on the boot partition): Wi-Fi by DHCP\n"
                "[Match]\nName=wlan0\n\n[Network]\nDHCP=yes\nMulticastDNS=yes\n")


def authorized_keys_text(old: str, keys: Iterable[str]) -> str:
    """root's authorized_keys: the emoedge.yaml block replaced by ``keys``; lines added by hand kept."""
    out, inside = [], False
    for ln in old.splitlines():
        if ln == SSH_BEGIN:
            inside = True
        elif ln == SSH_END:
            inside = False
        elif not inside:
            out.append(ln)
    keys = list(keys)
    if keys:
        out += [SSH_BEGIN, *keys, SSH_END]
    return "\n".join(out) + "\n" if out else ""


def plan_system(plan: Plan, root: Path, hostname: str, timezone: str | None, wifi, ssh_keys: tuple[str, ...]) -> None:
    """Host name, time zone, Wi-Fi and SSH keys into ``plan``. Wi-Fi and SSH keys absent from the file
    remove what an earlier file set (the file is the truth); hand-added SSH keys are kept."""
    plan.write("/etc/hostname", hostname + "\n")
    try:
        old_hosts = under(root, "/etc/hosts").read_text(errors="replace")
    except OSError:
        old_hosts = ""
    plan.write("/etc/hosts", hosts_text(old_hosts, hostname))
    if timezone is not None:
        plan.links.append(Link("/etc/localtime", f"/usr/share/zoneinfo/{timezone}"))
        plan.write("/etc/timezone", timezone + "\n")
    if wifi is not None:
        plan.write(WPA_CONF, wpa_conf(wifi.country, wifi.ssid, wifi.psk, wifi.hidden), 0o600)
        plan.write(NETWORK_FILE, NETWORK_TEXT)
        plan.links.append(Link(f"{WANTS}/{WPA_UNIT}", "/lib/systemd/system/wpa_supplicant@.service"))
        plan.links.append(Link(f"{WANTS}/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service"))
    else:
        plan.removes += [WPA_CONF, NETWORK_FILE, f"{WANTS}/{WPA_UNIT}"]
    ak = under(root, "/root/.ssh/authorized_keys")
    try:
        old_keys = ak.read_text(errors="replace")
    except OSError:
        old_keys = ""
    if ssh_keys or SSH_BEGIN in old_keys:
        plan.dirs.append(("/root/.ssh", None, 0o700))
        plan.write("/root/.ssh/authorized_keys", authorized_keys_text(old_keys, ssh_keys), 0o600)
