"""Detector model files: where they come from (official locations, sha256 pinned) and where
they are found on disk. Downloads are verified before they are kept; a bad file is never kept."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from emoedge.edge.errors import ModelError


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    sha256: str


DETECTOR_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "blazeface": (
        RemoteFile("face_detection_short_range.tflite",
                   "https://storage.googleapis.com/mediapipe-assets/face_detection_short_range.tflite",
                   "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    ),
    "ssd": (
        RemoteFile("opencv_face_detector_uint8.pb",
                   "https://raw.githubusercontent.com/opencv/opencv_3rdparty/"
                   "dnn_samples_face_detector_20180220_uint8/opencv_face_detector_uint8.pb",
                   "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed"),
        RemoteFile("opencv_face_detector.pbtxt",
                   "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/"
                   "opencv_face_detector.pbtxt",
                   "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144"),
    ),
}


def cache_dir() -> Path:
    """``$EMOEDGE_MODELS`` or ``~/.cache/emoedge/models``."""
    env = os.environ.get("EMOEDGE_MODELS")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(name: str) -> tuple[RemoteFile, ...]:
    try:
        return DETECTOR_FILES[name]
    except KeyError:
        raise ValueError(f"unknown detector model {name!r}; choose one of {sorted(DETECTOR_FILES)}") from None


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
        if target.is_file() and sha256_of(target) == f.sha256:
            out.append(target)
            continue
        url = f"{base_url.rstrip('/')}/{f.name}" if base_url else f.url
        fd, tmp = tempfile.mkstemp(prefix=f.name + ".", suffix=".part", dir=dest)
        try:
            h = hashlib.sha256()
            import urllib.request  # here, not at import: it loads ssl (~4 MB RSS) into every runtime

            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout_s) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    fh.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(f.name, done, total)
            if h.hexdigest() != f.sha256:
                raise ModelError(f"{url}: sha256 {h.hexdigest()} does not match the pinned {f.sha256}; "
                                 f"the file was not kept")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600
            os.replace(tmp, target)
        except OSError as exc:
            raise ModelError(f"{url}: download failed: {exc}") from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
        out.append(target)
    return out
