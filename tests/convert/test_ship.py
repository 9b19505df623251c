"""`models ship` (emoedge.convert.ship) needs explicit output folders and never guesses where to write."""

import pytest


def test_models_ship_needs_explicit_output_folders(capsys):
    from emoedge.cli import build_parser

    base = ["models", "ship", "--run", "r", "--name", "fast", "--data", "d"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + ["--report-dir", "rep"])
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + ["--out", "o"])
    a = build_parser().parse_args(base + ["--out", "o", "--report-dir", "rep"])
    assert (a.out, a.report_dir) == ("o", "rep")


def test_ship_refuses_to_guess_where_to_write(tmp_path):
    from emoedge.convert.ship import ship

    with pytest.raises(TypeError, match="required"):
        ship(tmp_path, "fast", None, command="c", out_dir=tmp_path)
