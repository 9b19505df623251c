"""``emoedge evaluate`` -> :func:`emoedge.evaluate.evaluate_model`; ``calibrate`` ->
:func:`emoedge.evaluate.calibrate`; ``explain`` -> :func:`emoedge.evaluate.grad_cam`,
:func:`emoedge.evaluate.explain_grid`."""

from __future__ import annotations

from pathlib import Path

from emoedge.cli._common import DETECTOR_NAMES, add_data_args, add_parser, dataset
from emoedge.core.errors import BadInputError


def cmd_evaluate(args) -> int:
    from emoedge.cli._common import model_file

    model = model_file(args.model, args.format)      # a shipped name's keras (or NAME@keras): its float master
    if args.detector:
        return _evaluate_photos(model, args)
    from emoedge.evaluate import evaluate_model, write_evaluation

    ds = dataset(args)
    run = evaluate_model(model, ds, usage=args.usage, num_threads=args.threads, class_prior=args.class_prior,
                         prior_strength=args.class_prior_strength)
    print(f"{model} on {ds.source} [{run.split}]" + _prior_note(args))
    print(run.evaluation.table())
    if args.json:
        write_evaluation(run, args.json, plot=not args.no_plots)
        print(f"wrote {args.json}")
    return 0


def _evaluate_photos(model, args) -> int:
    """--detector: --data is a photo folder root/<class>/*, scored end to end (detector -> classifier)."""
    from emoedge.evaluate.photos import evaluate_photos, write_photo_evaluation

    r = evaluate_photos(model, args.data, detector=args.detector, detector_dir=args.detector_dir, pad=args.pad,
                        num_threads=args.threads, class_prior=args.class_prior,
                        prior_strength=args.class_prior_strength)
    print(f"{model} on the photos of {args.data} [detector {r.detector}, pad {r.pad:g}]" + _prior_note(args))
    print(r.summary())
    if args.json:
        write_photo_evaluation(r, args.json)
        print(f"wrote {args.json}")
    return 0


def _prior_note(args) -> str:
    from emoedge.edge.inference.prior import describe

    if args.class_prior in ("model", "trained"):
        return "" if args.class_prior == "trained" else " [class prior: the model's own]"
    return f" [class prior {describe(args.class_prior, args.class_prior_strength)}]"


def cmd_calibrate(args) -> int:
    from emoedge.evaluate import calibrate

    r = calibrate(args.model, dataset(args), usage=args.usage, out_dir=args.out, write_to=args.also)
    print(f"{r['model']}: temperature {r['temperature']:.3f} on {r['split']} (n={r['n']}); "
          f"ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f}; {r['note']}")
    return 0


def cmd_explain(args) -> int:
    import cv2

    from emoedge.cli._common import model_file
    from emoedge.evaluate import attention_maps, explain_grid, grad_cam, overlay
    from emoedge.keras.io import load_keras

    if not args.image and not args.data:
        raise BadInputError("give --image or --data")
    model = load_keras(model_file(args.model, "keras"))   # a shipped name: its float master
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.image:
        from emoedge.core.images import read_image
        from emoedge.core.preprocess import preprocess_faces
        from emoedge.edge.faces.detect import HaarDetector

        img = read_image(args.image)        # a BadInputError (exit 2) when larger than the package's bound
        if img is None:
            raise BadInputError(f"{args.image}: not a readable image")
        faces = HaarDetector().detect(img)
        if not faces:
            print(f"{args.image}: no face found")
            return 1
        x = preprocess_faces(img, [f.box for f in faces])
        cams, att = grad_cam(model, x), attention_maps(model, x)
        for i in range(len(faces)):
            cv2.imwrite(str(out / f"face{i}_gradcam.png"), overlay(x[i], cams[i]))
            for name, maps in att.items():
                cv2.imwrite(str(out / f"face{i}_{name}.png"), overlay(x[i], maps[i]))
        print(f"wrote Grad-CAM overlays of {len(faces)} face(s) to {out}")
        return 0
    from emoedge.evaluate import select_split

    ds = select_split(dataset(args), args.usage)
    path = explain_grid(model, ds.images, ds.labels, ds.class_names, out / "gradcam_grid.png", args.per_class)
    print(f"wrote {path}")
    # a CBAM model: where each attention block looks, on the same faces
    for layer in [lay.name for lay in model.layers if lay.name.endswith("_spatial")]:
        path = explain_grid(model, ds.images, ds.labels, ds.class_names, out / f"attention_{layer}.png",
                            args.per_class, attention=layer)
        print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = add_parser(sub, "evaluate", "accuracy, macro-F1, per-class metrics, confusion matrix")
    p.add_argument("--model", required=True, help="a .tflite/.onnx/.keras/.hoglbp.npz file or a shipped model name")
    p.add_argument("--format", default="int8",
                   help="format of a shipped model: int8, uint8, onnx-int8, hoglbp, keras (its float master), ...")
    add_data_args(p)
    p.add_argument("--usage", help="split to score: a source split (PublicTest) or train/val/test; default all")
    p.add_argument("--json", help="write the evaluation JSON here (and a confusion-matrix PNG beside it)")
    p.add_argument("--class-prior", default="model",
                   help="score under a deployment class prior as the runtime applies it: model (default: the "
                        "setting the model ships with), trained (none), balanced or a YAML/JSON file of class shares")
    p.add_argument("--class-prior-strength", type=float, default=1.0,
                   help="how far to move from the trained mix to --class-prior (0..1, default 1)")
    p.add_argument("--threads", type=int, help="interpreter threads (default: the back-end's)")
    p.add_argument("--no-plots", action="store_true", help="no confusion-matrix PNG beside --json")
    p.add_argument("--detector", choices=DETECTOR_NAMES,
                   help="end to end: --data is a folder of photos root/<class>/*, each run through this face "
                        "detector and the runtime's classifier (largest face; no face counts as wrong); "
                        "default: --data holds face crops, scored directly")
    p.add_argument("--detector-dir", help="folder with the BlazeFace/SSD files (default: the fetch cache)")
    p.add_argument("--pad", type=float, default=0.0,
                   help="with --detector: add this fraction of the longer side on every side of each photo "
                        "(edge pixels replicated), for photos cropped tightly around the face")
    p.set_defaults(func=cmd_evaluate)

    p = add_parser(sub, "calibrate", "fit temperature scaling on validation data; record it in the manifests")
    p.add_argument("--model", required=True, help="the model file to calibrate (its manifest gets the temperature)")
    add_data_args(p)
    p.add_argument("--usage", default="val", help="split to fit on (val: the validation split carved from training)")
    p.add_argument("--also", action="append", default=[], metavar="MODEL",
                   help="another artifact of the same model to record the temperature in (repeatable)")
    p.add_argument("--out", help="folder for calibration.json and reliability.png")
    p.set_defaults(func=cmd_calibrate)

    p = add_parser(sub, "explain", "Grad-CAM (and CBAM attention) overlays: where the model looks")
    p.add_argument("--model", required=True, help="a Keras model")
    p.add_argument("--image", help="a photo: every face found gets an overlay")
    add_data_args(p, required=False)
    p.add_argument("--usage", default="PublicTest", help="split of --data the grid's faces come from")
    p.add_argument("--per-class", type=int, default=3,
                   help="faces per class in the grid, right and wrong each")
    p.add_argument("--out", required=True, help="output folder for the PNG overlays")
    p.set_defaults(func=cmd_explain)
