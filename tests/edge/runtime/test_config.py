"""The runtime configuration (emoedge.edge.runtime.config): bad values on the command line name their key."""

import pytest

from emoedge.cli import main


@pytest.mark.parametrize("args,needle", [
    (["--threads", "0"], "key 'threads' must be >= 1"),
    (["--metrics-port", "99999"], "key 'metrics_port' must be >= 0 and <= 65535"),
    (["--interval-s", "-1"], "key 'interval_s' must be > 0"),
    (["--budget-ms", "0"], "key 'budget_ms' must be > 0"),
])
def test_bad_values_on_the_command_line_name_the_key(args, needle, capsys):
    code = main(["run", "--source", "demo", "--max-frames", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "--" + args[0].lstrip("-") in err and "model" not in err.split(":")[1]
