"""The image check's assertions (deploy/image/check.sh): from the serial console logs (the hook's
lines marked EMOEDGE-CHECK) and from what was read back from the image copy afterwards (the FAT
report with mtools, the ext4 files with debugfs). Each check is printed PASS/FAIL with what was seen.

    python3 check_image.py initrd INITRD                     # the initrd holds virtio_blk (exit 1 if not)
    python3 check_image.py good --work DIR --device-id ID --timezone TZ --window TB1 TE1 TB2 TE2
    python3 check_image.py bad --work DIR

Runs on the check host with its own Python (no emoedge import): sqlite3 reads the summaries."""

from __future__ import annotations

import argparse
import gzip
import lzma
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

MARK = "EMOEDGE-CHECK "
SLACK_S = 120          # the guest's clock (the virt machine's RTC) against the host's, and boot/poweroff margins


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, ok: bool, what: str, seen: str = "") -> bool:
        print(f"  {'PASS' if ok else 'FAIL'} {what}" + (f"  [{seen}]" if seen else ""))
        if not ok:
            self.failed.append(what)
        return ok


def marked(console: Path) -> list[str]:
    """The hook's lines (without the mark), in order; systemd may prefix its own text."""
    if not console.is_file():
        return []
    text = console.read_bytes().decode("utf-8", "replace").replace("\r", "")
    return [line.split(MARK, 1)[1].strip() for line in text.splitlines() if MARK in line]


def first(lines: list[str], prefix: str) -> str:
    return next((x[len(prefix):].strip() for x in lines if x.startswith(prefix)), "")


def whole(lines: list[str], prefix: str) -> str:
    return next((x for x in lines if x.startswith(prefix)), "")


def fields(line: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def _decompress(raw: bytes) -> bytes:
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-dc"], input=raw, capture_output=True).stdout
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return b""


def initrd(path: Path) -> int:
    """initramfs-tools' initrd: an uncompressed cpio (modules, themselves .ko.xz) and a compressed one."""
    raw = path.read_bytes()
    parts = [raw]
    end = raw.rfind(b"TRAILER!!!")
    if raw[:6] == b"070701" and end > 0:   # the compressed archive starts after the first's trailer and padding
        rest = raw[end + 10:].lstrip(b"\x00")
        parts.append(_decompress(rest))
    else:
        parts.append(_decompress(raw))
    found = sorted({m.decode() for part in parts
                    for m in re.findall(rb"virtio_(?:blk|pci|mmio|net)\.ko(?=\.xz|\.zst|\.gz|\W)", part)})
    print(f"  initrd {path.name}: {len(raw) >> 20} MiB, virtio modules: {', '.join(found) or 'none'}")
    return 0 if "virtio_blk.ko" in found else 1


def intervals(db: Path) -> list[tuple]:
    if not db.is_file() or db.stat().st_size == 0:
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    return con.execute("SELECT r.boot_id, i.start_unix_ns, i.end_unix_ns, i.frames, i.face_observations, r.source "
                       "FROM intervals i JOIN runs r ON r.run_id = i.run_id ORDER BY i.id").fetchall()


def boot_checks(c: Checks, lines: list[str], n: int, window: tuple[int, int]) -> str:
    """What both boots of the good file must show; returns this boot's id."""
    c.check(bool(lines), f"boot {n}: the hook ran and reported on the serial console", f"{len(lines)} lines")
    boot_id = fields(first(lines, "boot "))["boot_id"] if first(lines, "boot ") else ""
    fb = fields(first(lines, "firstboot "))
    c.check(fb.get("result") == "success" and fb.get("exit_status") == "0",
            f"boot {n}: the first-boot unit succeeded", first(lines, "firstboot "))
    c.check("enabled=enabled" in whole(lines, "sensor enabled="), f"boot {n}: emoedge-sensor.service enabled",
            whole(lines, "sensor enabled="))
    proc = first(lines, "sensor process ")
    c.check("user=emoedge" in proc, f"boot {n}: the emoedge unit's process runs as user emoedge", proc)
    c.check(re.search(r"NoNewPrivs:\s*1", proc) is not None, f"boot {n}: its process has NoNewPrivs", proc)
    c.check(first(lines, "sensor process-root-mount") == "ro" and first(lines, "sensor process-data-mount") == "rw",
            f"boot {n}: in its mount namespace / is read-only and /data/emoedge writable (ProtectSystem=strict, "
            f"ReadWritePaths)", f"/ {first(lines, 'sensor process-root-mount')}, /data/emoedge "
                                f"{first(lines, 'sensor process-data-mount')}")
    shown = (x[len("sensor-show: "):].partition("=") for x in lines if x.startswith("sensor-show: "))
    show = {k: v for k, _, v in shown}
    want = {"User": "emoedge", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "NoNewPrivileges": "yes"}
    c.check(all(show.get(k) == v for k, v in want.items()) and bool(show.get("IPAddressDeny")),
            f"boot {n}: its sandboxing (systemctl show: User, ProtectSystem, ProtectHome, PrivateTmp, "
            f"NoNewPrivileges, IPAddressDeny)", ", ".join(f"{k}={show.get(k)}" for k in [*want, "IPAddressDeny"]))
    c.check("EMOEDGE_MODELS=/opt/emoedge/models" in show.get("Environment", ""),
            f"boot {n}: the image's drop-in points it at the shipped BlazeFace", show.get("Environment", ""))
    rows = [fields(x) for x in lines if x.startswith("interval ")]
    faces = sum(int(r["face_observations"]) for r in rows)
    lo, hi = (window[0] - SLACK_S) * 10**9, (window[1] + SLACK_S) * 10**9
    wall = [r for r in rows if lo <= int(r["start_unix_ns"]) <= int(r["end_unix_ns"]) <= hi]
    c.check(len(rows) >= 1 and len(wall) == len(rows),
            f"boot {n}: interval summaries of this boot written with wall-clock times (within the boot's window)",
            f"{len(rows)} intervals, {len(wall)} inside the window; frames "
            f"{sum(int(r['frames']) for r in rows)}, face observations {faces}")
    c.check(faces > 0, f"boot {n}: faces were seen in the clip")
    c.check(first(lines, "failed-units") == "0", f"boot {n}: no failed unit",
            ", ".join(x for x in lines if x.startswith("failed-unit ")) or first(lines, "failed-units"))
    clock = fields(first(lines, "clock "))
    c.check(bool(clock) and window[0] - SLACK_S <= int(clock.get("unix_s", 0)) <= window[1] + SLACK_S,
            f"boot {n}: the guest's wall clock is the real time", first(lines, "clock "))
    c.check("done" in lines, f"boot {n}: the hook finished (powered off cleanly)")
    return boot_id


def good(work: Path, device_id: str, tz: str, window: list[int]) -> int:
    c = Checks()
    l1, l2 = marked(work / "good1.console"), marked(work / "good2.console")
    print("good file, boot 1:")
    b1 = boot_checks(c, l1, 1, (window[0], window[1]))
    j1 = "\n".join(x for x in l1 if x.startswith("firstboot-journal:"))
    c.check("unchanged" not in j1 and bool(j1), "boot 1: first boot applied the file (its journal)", j1[:300])
    report = (work / "good1.firstboot.txt").read_text(errors="replace")
    c.check(bool(report.strip()) and device_id in report, "boot 1: emoedge-firstboot.txt on the boot partition "
            "reports what was applied", report.strip().splitlines()[0] if report.strip() else "(empty)")
    c.check((work / "good1.hostname").read_text().strip() == device_id, "boot 1: hostname = device_id",
            (work / "good1.hostname").read_text().strip())
    c.check((work / "good1.timezone").read_text().strip() == tz, f"boot 1: time zone {tz} applied",
            (work / "good1.timezone").read_text().strip())
    unit = (work / "good1.emoedge-sensor.service").read_text(errors="replace")
    c.check("User=emoedge" in unit and "ExecStart=" in unit, "boot 1: the emoedge unit was rendered in the root",
            next((x for x in unit.splitlines() if x.startswith("ExecStart=")), ""))
    print("good file, boot 2 (the same card):")
    b2 = boot_checks(c, l2, 2, (window[2], window[3]))
    j2 = "\n".join(x for x in l2 if x.startswith("firstboot-journal:"))
    c.check("unchanged" in j2, "boot 2: nothing re-applied (the file is unchanged)", j2[:300])
    c.check(bool(b1) and bool(b2) and b1 != b2, "boot 2 is a new boot", f"{b1} / {b2}")
    sha1, sha2 = (work / "good1.firstboot.sha256").read_text(), (work / "good2.firstboot.sha256").read_text()
    c.check(bool(sha1) and sha1 == sha2, "the applied file's sha256 kept across boots", sha1.strip()[:40])
    rows = intervals(work / "good2.summaries.sqlite")
    by_boot = {b: [r for r in rows if r[0] == b] for b in (b1, b2)}
    lo, hi = (window[0] - SLACK_S) * 10**9, (window[3] + SLACK_S) * 10**9
    c.check(all(by_boot.values()) and all(lo <= r[1] <= r[2] <= hi for r in rows),
            "read back from the image: summaries.sqlite holds both boots' intervals, wall-clock times",
            f"{len(rows)} intervals: boot 1 {len(by_boot[b1])}, boot 2 {len(by_boot[b2])}; "
            f"source {rows[0][5] if rows else '-'}")
    return summary(c)


def bad(work: Path) -> int:
    c = Checks()
    lines = marked(work / "bad.console")
    console = (work / "bad.console").read_bytes().decode("utf-8", "replace") if (work / "bad.console").is_file() else ""
    report = (work / "bad.firstboot.txt").read_text(errors="replace") if (work / "bad.firstboot.txt").is_file() else ""
    print("bad file:")
    c.check(bool(lines), "the hook ran and reported on the serial console", f"{len(lines)} lines")
    fb = fields(first(lines, "firstboot "))
    c.check(fb.get("exit_status") == "2", "the first-boot unit refused the file (exit 2)", first(lines, "firstboot "))
    wrong = (("colour", "the unknown key"), ("mqtt.url", "the bad MQTT URL"), ("purpose", "the missing purpose"))
    for key, what in wrong:
        c.check(f"'{key}'" in console, f"{what} ('{key}') reported on the console")
        c.check(f"'{key}'" in report, f"{what} ('{key}') reported in emoedge-firstboot.txt on the boot partition")
    s = whole(lines, "sensor enabled=")
    c.check("enabled=disabled" in s and "active=inactive" in s, "the emoedge service stays off", s)
    c.check("emoedge-sensor.service" not in (work / "bad.wants").read_text(errors="replace"),
            "read back: emoedge-sensor.service not in multi-user.target.wants")
    c.check(not intervals(work / "bad.summaries.sqlite"), "read back: no summaries written")
    return summary(c)


def summary(c: Checks) -> int:
    print(f"  {'all passed' if not c.failed else f'{len(c.failed)} FAILED: ' + '; '.join(c.failed)}")
    return 1 if c.failed else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "initrd":
        return initrd(Path(argv[1]))
    p = argparse.ArgumentParser(prog="check_image.py")
    p.add_argument("what", choices=("good", "bad"))
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--device-id", default="")
    p.add_argument("--timezone", default="")
    p.add_argument("--window", nargs=4, type=int, metavar=("TB1", "TE1", "TB2", "TE2"))
    a = p.parse_args(argv)
    if a.what == "good":
        if not a.window:
            p.error("good needs --window TB1 TE1 TB2 TE2")
        return good(a.work, a.device_id, a.timezone, a.window)
    return bad(a.work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
