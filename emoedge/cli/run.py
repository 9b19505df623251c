"""The device commands: ``run`` -> :class:`emoedge.edge.runtime.pipeline.Pipeline` ``(config).run()``,
``export`` -> :func:`emoedge.edge.outputs.sinks.export_csv`,
``doctor`` -> :func:`emoedge.edge.deployment.doctor.diagnose`,
``profile`` -> :func:`emoedge.edge.deployment.profiles.load_profile` / ``render_unit``, ``classify`` ->
:class:`emoedge.edge.inference.classify.FaceClassifier`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emoedge.cli._common import DETECTOR_NAMES, add_group, add_parser
from emoedge.core.errors import BadInputError
from emoedge.core.shipped import DEFAULT_MODEL


def runtime_config(args):
    """(RuntimeConfig, Deployment | None) from the command line: see
    :func:`emoedge.edge.deployment.profiles.resolve_run_config`."""
    import dataclasses

    from emoedge.edge.deployment.profiles import resolve_run_config
    from emoedge.edge.runtime.config import RuntimeConfig

    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(RuntimeConfig)
             if getattr(args, f.name, None) is not None}
    return resolve_run_config(args.config, args.profile, args.set or (), flags)


def cmd_run(args) -> int:
    from emoedge.edge.runtime.pipeline import Pipeline

    config, deployment = runtime_config(args)
    print(f"emoedge run: source {config.source}, model {config.model} ({config.model_format}), detector "
          f"{config.detector}, budget {config.budget_ms:.0f} ms", file=sys.stderr)
    tty, calls = sys.stderr.isatty(), [0]

    def status(line: str) -> None:
        if tty:  # one line, rewritten in place
            print("\r" + line + " " * 8, end="", file=sys.stderr, flush=True)
        elif calls[0] % 10 == 0:  # a log (journal, file): a line every 10th status
            print(line, file=sys.stderr, flush=True)
        calls[0] += 1

    summary = Pipeline(config, deployment=deployment, status=status).run()
    print("", file=sys.stderr)
    print(summary.text())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    if summary.exit_code:
        from emoedge.core.errors import EXIT_MEANING

        print(f"emoedge run: exit {summary.exit_code} ({EXIT_MEANING.get(summary.exit_code, '?')})", file=sys.stderr)
    return summary.exit_code


def cmd_export(args) -> int:
    from emoedge.edge.outputs.sinks import export_csv

    if not Path(args.db).is_file():
        raise BadInputError(f"{args.db}: summaries database not found")
    print(f"wrote {export_csv(args.db, args.csv)} interval(s) to {args.csv}")
    return 0


def cmd_doctor(args) -> int:
    from emoedge.edge.deployment.doctor import FAIL, diagnose

    checks = diagnose(args.root, profile=args.profile, model=args.model, model_format=args.model_format,
                      overrides=args.set)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(failed)} problem(s)" if failed else "no problems found")
    return 1 if failed else 0


def cmd_profile(args) -> int:
    from emoedge.edge.deployment.profiles import list_profiles, load_profile

    if args.profile_command == "list":
        for name in list_profiles():
            p = load_profile(name)
            print(f"{name:24s} {p.board.name} ({p.deployment.mode}): {p.runtime.detector}, {p.runtime.model} "
                  f"{p.runtime.model_format}, budget {p.runtime.budget_ms:.0f} ms")
        return 0
    prof = load_profile(args.profile, overrides=args.set)
    if args.profile_command == "unit":
        from emoedge.edge.deployment.profiles import render_unit

        print(render_unit(prof, Path(args.template).read_text(), args.prefix, args.set), end="")
    elif args.profile_command == "check":
        print(f"{prof.path}: ok ({prof.board.name}, {prof.deployment.mode} mode)")
    else:
        import yaml

        print(yaml.safe_dump(prof.to_dict(), sort_keys=False), end="")
    return 0


def cmd_classify(args) -> int:
    import cv2

    from emoedge.core.images import read_image
    from emoedge.edge.faces.detect import make_detector
    from emoedge.edge.faces.tracking import UNCERTAIN
    from emoedge.edge.inference.classify import FaceClassifier
    from emoedge.edge.outputs.overlay import draw_predictions
    from emoedge.edge.runtime.demo import demo_image

    image = demo_image() if args.image is None else read_image(args.image)   # > 40 MP: exit 2, never decoded
    if image is None:
        raise BadInputError(f"{args.image}: not a readable image")
    detector = make_detector(args.detector, args.detector_dir, args.threads)
    clf = FaceClassifier.from_spec(args.model, fmt=args.format, num_threads=args.threads, detector=detector,
                                   min_confidence=args.uncertain_below, class_prior=args.class_prior)
    preds = clf.classify_image(image)
    src = "demo image (matplotlib's grace_hopper.jpg)" if args.image is None else str(args.image)
    print(f"{src}: {len(preds)} face(s), model {clf.model_path.name}, detector {detector.name}")
    for p in preds:
        top = sorted(zip(clf.class_names, p.probs), key=lambda t: -t[1])[:3]
        print(f"  box={p.face.box} label={p.label} confidence={p.confidence:.2f} "
              f"top3={', '.join(f'{c} {v:.2f}' for c, v in top)}")
    for p in preds:
        if p.label == UNCERTAIN:
            best = clf.class_names[max(range(len(p.probs)), key=p.probs.__getitem__)]
            print(f"  uncertain at {p.face.box}: its most likely class ({best} {p.confidence:.3f}) is below "
                  f"the uncertain threshold {clf.min_confidence:.2f}, so no emotion is claimed "
                  "(top3: what it leans to)")
    if args.json:
        Path(args.json).write_text(json.dumps([p.to_dict() for p in preds], indent=2))
    if args.out:
        cv2.imwrite(str(args.out), draw_predictions(image, preds))
        print(f"wrote {args.out}")
    return 0


def _add_set(p, what: str = "override a profile value (repeatable), e.g. runtime.budget_ms=50") -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=what)


def _add_run_options(p) -> None:
    """One option per RuntimeConfig key it sets (the dest is the key); an unset one (None) keeps the
    profile's or config file's value, so its default is named in the help, not set here."""
    p.add_argument("--config", help="a runtime YAML (keys of emoedge.edge.runtime.config.RuntimeConfig)")
    p.add_argument("--profile", help="a device profile name or YAML file (firmware_configs/)")
    p.add_argument("--source", help="demo, picamera, a camera index, /dev/videoN, a GStreamer pipeline, a video, "
                   "an image or a folder (default demo)")
    p.add_argument("--model", help="a shipped model name, a .tflite/.onnx file or an .ensemble.json "
                                   f"(default: {DEFAULT_MODEL})")
    p.add_argument("--model-format", dest="model_format", help="format of a shipped model (default int8)")
    p.add_argument("--delegate", choices=["cpu", "edgetpu"], help="where the classifier runs (default cpu)")
    p.add_argument("--threads", type=int, help="interpreter threads, 1 or more (default: the back-end's)")
    p.add_argument("--detector", choices=DETECTOR_NAMES, help="face detector (default haar)")
    p.add_argument("--detector-dir", dest="detector_dir",
                   help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--budget-ms", dest="budget_ms", type=float, help="per-frame latency budget in ms (default 66)")
    p.add_argument("--detect-every", dest="detect_every", type=int,
                   help="run the detector every N frames, track in between (default 5)")
    p.add_argument("--max-faces", dest="max_faces", type=int, help="faces classified per frame at most (default 4)")
    p.add_argument("--uncertain-below", dest="uncertain_below", type=float,
                   help="smoothed confidence below this is labelled 'uncertain' (default: the threshold chosen for "
                        "the model on validation, in its manifest; 0.4 for a model without one)")
    p.add_argument("--class-prior", dest="class_prior",
                   help="the class mix faces are assumed to come in: model (default: the setting the model ships "
                        "with), trained (its training mix), balanced, or a YAML/JSON file of class shares (logit "
                        "adjustment, one add per face)")
    p.add_argument("--interval-s", dest="interval_s", type=float,
                   help="seconds per interval summary (default 60)")
    p.add_argument("--max-frames", dest="max_frames", type=int, help="stop after this many frames (default: none)")
    p.add_argument("--display", dest="display", action="store_true", default=None,
                   help="show the overlay in a window (needs GUI OpenCV; refused by a no-images profile)")
    p.add_argument("--no-display", dest="display", action="store_false", help="no window (the default)")
    p.add_argument("--fullscreen", action="store_true", default=None,
                   help="kiosk: full screen, showing the kiosk screen (unless --screen debug)")
    p.add_argument("--screen", choices=("auto", "kiosk", "debug"),
                   help="what a window (and --video-out) shows: kiosk (the visitor's screen: large labels, bars, "
                        "a privacy notice), debug (the overlay), auto (default: kiosk full-screen, else debug)")
    p.add_argument("--screen-size", dest="screen_size", metavar="WxH",
                   help="draw the kiosk screen at this size, e.g. 1920x1080 (default: the full-screen window's)")
    p.add_argument("--realtime", action="store_true", default=None,
                   help="play files at their own frame rate (wait when early, skip frames when late)")
    p.add_argument("--loop", action="store_true", default=None,
                   help="replay a video file, image or folder forever (soak tests, kiosk demos)")
    p.add_argument("--events", help="JSON Lines file: a run line, label changes, interval summaries")
    p.add_argument("--events-max-mb", dest="events_max_mb", type=float,
                   help="rotate the events file at this size, like a log (0: never; default 50)")
    p.add_argument("--events-keep", dest="events_keep", type=int,
                   help="rotated events files kept: events.jsonl.1 .. .N, the oldest dropped (default 4)")
    p.add_argument("--db", help="SQLite file of interval summaries (wall-clock UTC, run and boot ids)")
    p.add_argument("--video-out", dest="video_out",
                   help="write the overlay video here, at the source's pace (stores images: refused by profiles "
                        "that forbid it)")
    p.add_argument("--metrics-port", dest="metrics_port", type=int,
                   help="serve /health and /metrics on 127.0.0.1:PORT (0..65535; default: off)")
    p.add_argument("--retention-days", dest="retention_days", type=float,
                   help="delete stored summaries older than this many days (default: keep all)")
    p.add_argument("--min-free-mb", dest="min_free_mb", type=float,
                   help="write no record while the disk has less than this free (default 50 MB)")
    p.add_argument("--summary-json", help="write the run summary here")
    _add_mqtt_options(p)


def _add_mqtt_options(p) -> None:
    g = p.add_argument_group("MQTT (interval summaries to a broker; pip install 'emoedge[mqtt]')")
    g.add_argument("--mqtt", help="mqtt://host:port[/prefix] (mqtts:// for TLS): publish every interval summary to "
                                  "PREFIX/DEVICE/intervals (QoS 1) through a store-and-forward outbox")
    g.add_argument("--mqtt-device", dest="mqtt_device", help="device id in the topics (default: the host name)")
    g.add_argument("--mqtt-room", dest="mqtt_room", help="room or place carried in every interval (fleet page)")
    g.add_argument("--mqtt-username", dest="mqtt_username", help="broker user name")
    g.add_argument("--mqtt-password-file", dest="mqtt_password_file",
                   help="file holding the broker password (or set EMOEDGE_MQTT_PASSWORD; not on the command line)")
    g.add_argument("--mqtt-ca-file", dest="mqtt_ca_file", help="CA certificate(s) to verify the broker's TLS")
    g.add_argument("--mqtt-cert-file", dest="mqtt_cert_file",
                   help="mutual TLS: this box's client certificate (PEM; with --mqtt-key-file, over mqtts://)")
    g.add_argument("--mqtt-key-file", dest="mqtt_key_file",
                   help="mutual TLS: the certificate's private key (PEM, unencrypted, readable only by the "
                        "service's user)")
    g.add_argument("--ha-discovery", dest="mqtt_ha_discovery", nargs="?", const="homeassistant", metavar="PREFIX",
                   help="announce the box to Home Assistant: a retained MQTT device discovery config under "
                        "PREFIX/device/ (default prefix homeassistant): a sensor per label share, the uncertain "
                        "share and faces, unavailable when the box stops")
    g.add_argument("--mqtt-outbox", dest="mqtt_outbox",
                   help="store-and-forward SQLite file (default: beside --db, else ./emoedge.mqtt-outbox.sqlite)")
    g.add_argument("--mqtt-flush-s", dest="mqtt_flush_s", type=float,
                   help="at exit, keep sending unacknowledged intervals this many seconds (default 10)")


def register(sub) -> None:
    p = add_parser(sub, "classify", "detect and classify the faces of one image (default: a demo photo)")
    p.add_argument("--image", help="an image file; default: the demo photo shipped with matplotlib")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"a shipped model name or a .tflite/.onnx file (default {DEFAULT_MODEL})")
    p.add_argument("--format", default="int8", help="format of a shipped model")
    p.add_argument("--threads", type=int, help="interpreter threads (default: the back-end's)")
    p.add_argument("--detector", default="haar", choices=DETECTOR_NAMES, help="face detector")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--uncertain-below", type=float,
                   help="a face whose most likely class is below this probability is 'uncertain' (as in emoedge run; "
                        "default: the threshold chosen for the model on validation, in its manifest)")
    p.add_argument("--class-prior", default="model",
                   help="model (default: the setting the model ships with), trained (its training mix), balanced "
                        "(every class alike) or a YAML/JSON file of class shares (see README, class prior)")
    p.add_argument("--out", help="write the image with boxes and labels here")
    p.add_argument("--json", help="write the predictions as JSON here")
    p.set_defaults(func=cmd_classify)

    p = add_parser(sub, "run", "the on-device pipeline: camera/file -> faces -> emotions -> sinks")
    _add_run_options(p)
    _add_set(p)
    p.set_defaults(func=cmd_run)

    p = add_parser(sub, "export", "interval summaries from a sensor's SQLite file as CSV")
    p.add_argument("--db", required=True, help="the SQLite file of interval summaries (emoedge run --db)")
    p.add_argument("--csv", required=True, help="the CSV file to write")
    p.set_defaults(func=cmd_export)

    p = add_parser(sub, "doctor", "check this board, camera, Edge TPU, interpreter, model and profile")
    p.add_argument("--profile", help="a profile name or YAML file to check against this board")
    p.add_argument("--model", help=f"model to check (default: the profile's, else {DEFAULT_MODEL})")
    p.add_argument("--model-format", dest="model_format", help="format of a shipped model (default: the profile's)")
    _add_set(p)
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: the file-system root to inspect
    p.set_defaults(func=cmd_doctor)

    prof = add_group(sub, "profile", "device profiles (firmware_configs/): list, check, show, unit",
                     dest="profile_command")
    add_parser(prof, "list", "every shipped profile: board, mode, detector, model, budget").set_defaults(
        func=cmd_profile)
    for name, what in (("check", "validate a profile file or name"), ("show", "the fully resolved settings"),
                       ("unit", "the systemd unit for a profile (Restart, WatchdogSec, User, data folder from its "
                                "deployment section)")):
        p = add_parser(prof, name, what)
        p.add_argument("profile", help="a profile name (e.g. rpi4) or a YAML file")
        _add_set(p, "override a value (repeatable), e.g. deployment.purpose='...'")
        if name == "unit":
            p.add_argument("--template", required=True, help="a unit template (deploy/systemd/*.service)")
            p.add_argument("--prefix", default="/opt/emoedge", help="install prefix holding venv/")
        p.set_defaults(func=cmd_profile)
