"""``emoedge train`` -> :func:`emoedge.train.trainer.train` (a HOG+LBP config:
:func:`emoedge.train.handcrafted.train_hoglbp`); the config from
:func:`emoedge.train.config_file.load_train_config`."""

from __future__ import annotations

from emoedge.cli._common import add_data_args, add_parser, dataset


def cmd_train(args) -> int:
    from emoedge.train.config_file import load_train_config

    config = load_train_config(args.config, args.set)  # before TensorFlow: the config may turn on oneDNN
    ds = dataset(args)
    if config.arch == "hog_lbp":  # the handcrafted baseline: scikit-learn, same outputs and reports
        from emoedge.train.handcrafted import train_hoglbp

        rec = train_hoglbp(ds, args.out, val_fraction=config.val_fraction, seed=config.seed,
                           max_train_items=config.max_train_items, class_balance=config.class_balance)
        print(f"HOG+LBP baseline in {rec['train_seconds']:.0f} s: validation accuracy {rec['val']['accuracy']:.4f}"
              + (f", test accuracy {rec['test']['accuracy']:.4f}" if "test" in rec else ""))
        print(f"wrote {args.out}/model.hoglbp.npz and run.json")
        return 0
    from emoedge.train.trainer import train

    result = train(config, ds, args.out)  # sets TF_ENABLE_ONEDNN_OPTS from the config before importing TF
    print(f"best epoch {result.best_epoch}/{result.epochs_run}, {result.train_seconds / 60:.1f} min")
    print(f"validation: accuracy {result.val.accuracy:.4f}, macro-F1 {result.val.macro_f1:.4f}")
    if result.test is not None:
        print("test:\n" + result.test.table())
    print(f"wrote {result.out_dir}/ (model.keras, run.json, history.json, curves.png)")
    return 0


def register(sub) -> None:
    p = add_parser(sub, "train", "train a model of the zoo (resumes an interrupted run with the same --out)")
    add_data_args(p)
    p.add_argument("--config", default="default",
                   help="a training YAML, or a shipped one (emoedge/train/configs/: default, fast, hoglbp, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable; YAML values, dotted keys nest), "
                        "e.g. --set epochs=5 --set augment.flip=false")
    p.add_argument("--out", required=True, help="output folder for the run")
    p.set_defaults(func=cmd_train)
