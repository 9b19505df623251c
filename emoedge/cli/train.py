"""``emoedge train`` -> :func:`emoedge.train.trainer.train` (a HOG+LBP config:
:func:`emoedge.train.handcrafted.train_hoglbp`); the config from
:func:`emoedge.train.config_file.load_train_config`. ``--recipe`` -> :func:`emoedge.recipes.run_recipe`."""

from __future__ import annotations

from emoedge.cli._common import add_data_args, add_parser, dataset
from emoedge.core.errors import BadInputError, as_bad_input


def cmd_recipe(args) -> int:
    from emoedge.recipes import load_recipe, run_recipe

    if args.set or args.config is not None or args.classes or args.rename or args.labels != "auto" or args.votes:
        raise BadInputError("emoedge train --recipe: the recipe sets the configs and labels of its steps; "
                         "--config, --set, --labels, --votes, --classes and --rename do not apply "
                         "(copy the recipe file and edit it instead)")
    recipe = load_recipe(args.recipe)
    print(f"recipe {recipe.model} ({recipe.source}): {len(recipe.steps)} steps, "
          f"{recipe.minutes:.0f} min of training when the shipped model was made; runs in {args.out}")
    run_recipe(recipe, args.data, args.out, until=args.until, dry_run=args.dry_run)
    return 0


def cmd_train(args) -> int:
    from emoedge.train.config_file import load_train_config

    if args.recipe:
        return cmd_recipe(args)
    if args.until or args.dry_run:
        raise BadInputError("emoedge train: --until and --dry-run go with --recipe")
    args.config = args.config or "default"

    sets = list(args.set)
    if any(s.partition("=")[0].strip() == "batch_size" for s in sets):
        sets.append("fit_batch_to_data=false")  # a batch size given on the command line is kept as given
    with as_bad_input():
        config = load_train_config(args.config, sets)  # before TensorFlow: the config may turn on oneDNN
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
    p.add_argument("--config", default=None,
                   help="a training YAML, or a shipped one (emoedge/train/configs/: default, fast, hoglbp, ...) "
                        "(default: default)")
    p.add_argument("--recipe", help="run a shipped model's whole recipe (its recorded commands, in order) instead: "
                                    "a shipped name (default, onepass, fast, hoglbp, ferplus8) or a recipe .yaml; "
                                    "--out is then the folder of its runs, and running it again resumes "
                                    "(finished steps are skipped)")
    p.add_argument("--until", metavar="STEP", help="with --recipe: stop after this step")
    p.add_argument("--dry-run", action="store_true", help="with --recipe: print the commands, run nothing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable; YAML values, dotted keys nest), "
                        "e.g. --set epochs=5 --set augment.flip=false")
    p.add_argument("--out", required=True, help="output folder for the run (with --recipe: for all its runs)")
    p.set_defaults(func=cmd_train)
