"""The emoedge image's manifest (deploy/image/build.sh): what a build put in the root, to compare two builds.

    python3 manifest.py write ROOT FIRMWARE OUT   # packages, Python packages, every file (mode, owner, size, sha256)
    python3 manifest.py ids SOURCE_DATE_EPOCH     # the file-system ids derived from the epoch
    python3 manifest.py diff A B                  # what differs between two manifests (exit 1 if anything)

Runs on the build host (no emulation): the dpkg status file and the venv's dist-info folders are read as text."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import uuid
from pathlib import Path


def packages(root: Path) -> list[str]:
    """``deb NAME VERSION ARCH`` of every installed Debian package (from var/lib/dpkg/status)."""
    out, cur = [], {}
    text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines() + [""]:
        if not line:
            if cur.get("Status", "").endswith(" installed"):
                out.append(f"deb {cur['Package']} {cur.get('Version', '?')} {cur.get('Architecture', '?')}")
            cur = {}
        elif not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    return sorted(out)


def python_packages(root: Path) -> list[str]:
    """``pip NAME VERSION`` of every distribution in the emoedge venv."""
    out = []
    for meta in sorted(root.glob("opt/emoedge/venv/lib/python3*/site-packages/*.dist-info/METADATA")):
        head = meta.read_text(errors="replace").split("\n\n", 1)[0]   # the headers end at the first blank line
        fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
        out.append(f"pip {fields.get('Name', meta.parent.name)} {fields.get('Version', '?')}")
    return out


def files(top: Path, prefix: str) -> list[str]:
    """``file PATH MODE UID:GID SIZE SHA256`` (links: ``-> TARGET``) of every entry under ``top``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel = prefix + "/" + str(p.relative_to(top))
            head = f"file {rel} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
            if stat.S_ISLNK(st.st_mode):
                out.append(f"{head} -> {os.readlink(p)}")
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                out.append(f"{head} {st.st_size} {h.hexdigest()}")
            else:
                out.append(head)
    return out


def write(root: Path, firmware: Path, out: Path) -> None:
    lines = packages(root) + python_packages(root) + files(root, "") + files(firmware, "/boot/firmware")
    out.write_text("\n".join(lines) + "\n")
    n_files = sum(1 for x in lines if x.startswith("file "))
    print(f"manifest: {out}: {sum(1 for x in lines if x.startswith('deb '))} Debian packages, "
          f"{sum(1 for x in lines if x.startswith('pip '))} Python packages, {n_files} files")


def ids(epoch: int) -> str:
    """FAT volume id, ext4 UUID, ext4 hash seed, MBR disk id: the same epoch, the same ids."""
    ns = uuid.UUID("6f1c5a52-58b7-4d0e-9a43-0e3c7a1d2b90")
    root_uuid = uuid.uuid5(ns, f"root-{epoch}")
    seed = uuid.uuid5(ns, f"hash-seed-{epoch}")
    digest = hashlib.sha256(f"emoedge-image-{epoch}".encode()).hexdigest()
    return f"{digest[:8]} {root_uuid} {seed} {digest[8:16]}"


def diff(a: Path, b: Path) -> int:
    """Print what differs, by kind (packages; file lists; file contents); 0 if nothing."""
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()

    def index(lines: list[str]) -> dict[str, str]:
        return {" ".join(x.split()[:2]): x for x in lines}

    ia, ib = index(la), index(lb)
    only_a = sorted(set(ia) - set(ib))
    only_b = sorted(set(ib) - set(ia))
    changed = sorted(k for k in set(ia) & set(ib) if ia[k] != ib[k])
    pk = [k for k in changed if not k.startswith("file ")]
    fk = [k for k in changed if k.startswith("file ")]
    print(f"{a.name} vs {b.name}: {len(ia)} / {len(ib)} entries; only in A {len(only_a)}, only in B {len(only_b)}; "
          f"package versions differing {len(pk)}; files differing {len(fk)}")
    for k in (only_a + only_b + pk + fk)[:60]:
        print(f"  {ia.get(k, '(absent)')}\n  {ib.get(k, '(absent)')}")
    return 1 if (only_a or only_b or changed) else 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "write":
        write(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 2 and argv[0] == "ids" and argv[1].isdigit():
        print(ids(int(argv[1])))
        return 0
    if len(argv) == 3 and argv[0] == "diff":
        return diff(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
