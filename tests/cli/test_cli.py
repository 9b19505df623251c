"""The command line mirrors the Python API and turns bad input into one clear line."""

import json

import pytest
from testdata import face_like, write_fer_csv

from emoedge.cli import main


@pytest.fixture
def csv_path(tmp_path, rng):
    imgs, labels = face_like(rng, 42, 7)
    return write_fer_csv(tmp_path / "d.csv", imgs, labels, ["Training"] * 28 + ["PublicTest"] * 14)


def test_data_inspect(csv_path, tmp_path, capsys):
    assert main(["data", "inspect", str(csv_path), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "42 images, 7 classes" in out and "PublicTest" in out
    assert json.loads((tmp_path / "o" / "inspect.json").read_text())["n"] == 42


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    assert main(["data", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emoedge: error:") and "bad.csv: row 1: 3 pixels, expected 2304" in err
    assert main(["evaluate", "--model", str(tmp_path / "none.tflite"), "--data", str(bad)]) == 2
    assert "none.tflite: model file not found" in capsys.readouterr().err


def test_train_config_errors(csv_path, tmp_path, capsys):
    assert main(["train", "--data", str(csv_path), "--config", "nope", "--out", str(tmp_path)]) == 2
    assert "nope: training config not found" in capsys.readouterr().err
    assert main(["train", "--data", str(csv_path), "--set", "epochz=1", "--out", str(tmp_path)]) == 2
    assert "unknown training option(s) ['epochz']" in capsys.readouterr().err


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:]] for line in out.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["default"][1] == "8" and rows["fast"][1] == "1"            # network passes per face
    assert int(rows["default"][2]) > 5 * int(rows["fast"][2])             # MACs per face (millions)
    assert rows["ferplus8"][0] == "8" and "%" in rows["fast"][4]          # classes; test accuracy


def test_run_and_doctor_and_export(tiny_tflite, tmp_path, capsys):
    from emoedge.edge.outputs.sinks import read_intervals

    db = tmp_path / "s.sqlite"
    assert main(["run", "--source", "demo", "--model", str(tiny_tflite), "--max-frames", "4", "--db", str(db),
                 "--summary-json", str(tmp_path / "sum.json")]) == 0
    out = capsys.readouterr().out
    assert "4 frames" in out and "stopped by max_frames" in out
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert summary["frames"] == 4 and summary["faces_seen"] == 1 and summary["detection_frames"] >= 1
    assert read_intervals(db)[0]["frames"] == 4
    assert main(["export", "--db", str(db), "--csv", str(tmp_path / "s.csv")]) == 0
    assert main(["doctor", "--profile", "x86-dev", "--model", str(tiny_tflite)]) == 0
    assert "edge tpu" in capsys.readouterr().out
    assert main(["run", "--source", str(tmp_path / "missing.mp4"), "--model", str(tiny_tflite)]) == 2
    assert "missing.mp4: video file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_convert_and_bench_from_the_command_line(tiny_tflite, csv_path, tmp_path, capsys):
    keras_path = tiny_tflite.with_name("tiny.keras")
    out = tmp_path / "conv"
    assert main(["convert", "--model", str(keras_path), "--to", "int8,onnx", "--calib", str(csv_path),
                 "--calib-size", "20", "--class-names", "angry,disgust,fear,happy,sad,surprise,neutral",
                 "--out", str(out), "--report", "--data", str(csv_path), "--usage", "PublicTest"]) == 0
    assert (out / "tiny.int8.tflite").is_file() and (out / "quantization_report.md").is_file()
    capsys.readouterr()
    assert main(["bench", "models", "--model", str(out / "tiny.int8.tflite"), "--model", str(tmp_path / "nope.tflite"),
                 "--runs", "5", "--no-rss", "--out", str(tmp_path / "b")]) == 0
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [m["status"] for m in res["models"]] == ["ok", "failed"]


# -- the command line itself: help everywhere, --version, -v/-q, python -m emoedge -------------------
def _parsers(parser, path=("emoedge",)):
    """(command path, parser) for the top-level parser and every subcommand below it."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert listed.get(name), f"{' '.join(path)} {name}: subcommand without help"
                yield from _parsers(sub, path + (name,))


def test_every_option_and_subcommand_has_help_and_shows_defaults():
    import argparse

    from emoedge.cli import build_parser
    from emoedge.cli._common import HelpFormatter

    missing, n = [], 0
    for path, parser in _parsers(build_parser()):
        assert parser.formatter_class is HelpFormatter, f"{' '.join(path)}: defaults not shown"
        for a in parser._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            n += 1
            if a.help is None or (a.help != argparse.SUPPRESS and not a.help.strip()):
                missing.append(f"{' '.join(path)} {'/'.join(a.option_strings) or a.dest}")
    assert n > 100 and not missing, f"options without help: {missing}"
    helps = {p: parser.format_help() for p, parser in _parsers(build_parser())}
    assert "(default: 0.25)" in helps[("emoedge", "bench", "models")]
    assert "(default: 300)" in helps[("emoedge", "convert")]


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"emoedge {version('emoedge')}"


def test_quiet_silences_warnings_and_verbose_shows_info(capsys):
    import logging

    log = logging.getLogger("emoedge.edge.runtime.pipeline")
    for flags, warning_shown, info_shown in (([], True, False), (["-q"], False, False), (["-v"], True, True)):
        assert main([*flags, "models", "list"]) == 0
        capsys.readouterr()
        log.warning("a warning")
        log.info("some info")
        err = capsys.readouterr().err
        assert ("emoedge: WARNING: a warning" in err) is warning_shown, (flags, err)
        assert ("emoedge: INFO: some info" in err) is info_shown, (flags, err)
    main(["models", "list"])  # back to the default for the tests after this one
    handlers = [h for h in logging.getLogger("emoedge").handlers if type(h).__name__ == "_StderrHandler"]
    assert len(handlers) == 1  # configured once, however often main() runs


def test_set_grammar_is_shared_by_training_configs_and_profiles():
    from emoedge.edge.runtime.config import ConfigError, parse_override
    from emoedge.train.config_file import load_train_config

    assert parse_override("augment.flip=false") == (["augment", "flip"], False)
    assert parse_override("deployment.purpose=safety study") == (["deployment", "purpose"], "safety study")
    assert parse_override("runtime.source=a=b") == (["runtime", "source"], "a=b")
    assert parse_override("budget_ms=50") == (["budget_ms"], 50)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("epochs")
    cfg = load_train_config("fast", ["epochs=3", "augment.flip=false", "learning_rate=0.0005"])
    assert cfg.epochs == 3 and cfg.augment.flip is False and cfg.learning_rate == 0.0005


def test_bench_all_writes_one_report_and_leaves_args_alone(tmp_path, capsys, monkeypatch):
    import emoedge.benchmarks.report as report
    from emoedge.cli import build_parser

    writes = []
    real = report.write_report
    monkeypatch.setattr(report, "write_report", lambda res, out: writes.append(out) or real(res, out))
    args = build_parser().parse_args(["bench", "all", "--model", "/nonexistent.tflite", "--runs", "5", "--no-rss",
                                      "--out", str(tmp_path)])
    before = dict(vars(args))
    assert args.func(args) == 1
    assert len(writes) == 1 and vars(args) == before
    assert json.loads((tmp_path / "results.json").read_text())["targets"] == []


def test_python_dash_m_emoedge_and_no_package_module_imports_the_cli():
    import subprocess
    import sys
    from pathlib import Path

    import emoedge

    r = subprocess.run([sys.executable, "-m", "emoedge", "models", "list"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "fast" in r.stdout, r.stderr
    root = Path(emoedge.__file__).parent
    users = [str(p.relative_to(root)) for p in root.rglob("*.py")
             if "emoedge.cli" in p.read_text() and p.parts[len(root.parts)] != "cli" and p.name != "__main__.py"]
    assert not users, f"modules that import the CLI: {users}"
