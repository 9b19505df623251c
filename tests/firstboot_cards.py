"""SD cards for the first-boot tests: a boot partition (a folder holding emoedge.yaml and its files) and a
root file system (a folder with the few files of a Debian image the first boot reads: /etc/passwd with the
service's user, /etc/hosts, tzdata's zone files)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import yaml

EMOEDGE_UID = 4242
EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "image" / "emoedge.yaml.example"
ZONES = ("Europe/London", "America/New_York", "UTC")


def ed25519_key(comment: str = "admin@laptop", seed: int = 1) -> str:
    """An OpenSSH ed25519 public key line (its key bytes made up: the format is what is checked)."""
    name = b"ssh-ed25519"
    blob = len(name).to_bytes(4, "big") + name + (32).to_bytes(4, "big") + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


GOOD = {"profile": "classroom-sensor-rpi4", "device_id": "room12-sensor", "room": "Room 12",
        "purpose": "engagement study, ethics approval REC-2026-14", "jurisdiction": "UK",
        "timezone": "Europe/London",
        "mqtt": {"url": "mqtt://192.0.2.10:1883/emoedge", "username": "room12", "password_file": "mqtt-password.txt"},
        "wifi": {"country": "GB", "ssid": "School-IoT", "psk": "correct horse battery staple"},
        "ssh_keys": [ed25519_key()], "retention_days": 90, "extra": {"runtime.interval_s": 60}}


@dataclass
class Card:
    boot: Path
    root: Path

    def write(self, settings: dict | str) -> Path:
        text = settings if isinstance(settings, str) else yaml.safe_dump(settings, sort_keys=False)
        p = self.boot / "emoedge.yaml"
        p.write_text(text)
        return p

    def report(self) -> str:
        return (self.boot / "emoedge-firstboot.txt").read_text()

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")


def make_card(tmp_path: Path, settings: dict | str | None = None, password: str | None = "s3cret\n") -> Card:
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     f"emoedge:x:{EMOEDGE_UID}:{EMOEDGE_UID}::/var/lib/emoedge:/usr/sbin/nologin\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost\n")
    for z in ZONES:
        (root / "usr/share/zoneinfo" / z).parent.mkdir(parents=True, exist_ok=True)
        (root / "usr/share/zoneinfo" / z).write_bytes(b"TZif2")
    if password is not None:
        (boot / "mqtt-password.txt").write_text(password)
    card = Card(boot, root)
    if settings is not None:
        card.write(settings)
    return card
