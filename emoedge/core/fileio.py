"""Files written whole or not at all, and their sha256: the one home of both for the package
(model artifacts and manifests, downloaded detector files, ensemble pins). Standard library only.

A write goes to a temporary file in the target's folder, then is renamed over the target: a
reader never sees a half-written file, and a failed write leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` when the block ends without an error;
    on an error (including one raised by the caller, e.g. a checksum mismatch) nothing is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # on disk before it replaces the old file (a power cut keeps one of them)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are shared files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


# SQLite's page cache per connection on the device, in KiB. SQLite's default (2,000 KiB) fills as a
# file grows, so a sensor's memory rose for weeks until its database passed 2 MB (the soak measured
# +1.7 MB over 200,000 frames). The device's files append at the B-tree's right edge and prune at its
# left: a few pages are hot, and 256 KiB keeps them.
DEVICE_SQLITE_CACHE_KIB = 256


def wal_connect(path: str | Path, full_sync: bool = False, cache_kib: int | None = None) -> sqlite3.Connection:
    """A connection to a SQLite file in WAL mode (readers never block the writer); ``full_sync``: each
    commit reaches the disk before it returns (a power cut loses nothing committed); ``cache_kib``:
    the page cache's bound (default: SQLite's own)."""
    db = sqlite3.connect(str(path), timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    if full_sync:
        db.execute("PRAGMA synchronous=FULL")
    if cache_kib is not None:
        db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")   # negative: KiB, not pages
    return db


def create_sqlite(path: Path, schema: str, what: str, error: type[Exception], full_sync: bool = False) -> None:
    """Create (or open) the SQLite file ``path`` with ``schema``; ``error("PATH: cannot use as WHAT: ...")``
    when the folder or the file cannot be used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = wal_connect(path, full_sync)
        db.executescript(schema)
        db.close()
    except (OSError, sqlite3.Error) as exc:
        raise error(f"{path}: cannot use as {what}: {exc}") from exc


def read_small_file(path: str | Path, what: str, max_bytes: int, error: type[Exception] = ValueError) -> bytes:
    """The whole of a small regular file (a password file, a configuration) as bytes, read as hostile
    input: opened without blocking (a FIFO would wait for a writer for ever), refused unless it is a
    regular file (``/dev/zero`` never ends), and refused when longer than ``max_bytes`` (only
    ``max_bytes + 1`` are ever read). ``error("PATH: cannot use as WHAT: ...")`` on any refusal."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
                else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise error(f"{path}: cannot use as {what}: it is {kind}, not a regular file")
        data = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{path}: cannot use as {what}: longer than {max_bytes} bytes")
    return data
