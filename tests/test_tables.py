"""The Markdown table helper (emoedge.tables)."""

import pytest

from emoedge.tables import markdown_table


def test_markdown_table_rule_alignment_and_padding():
    t = markdown_table(["a", "n"], [["x", 1], ["y", None], ["z"]], "lr")
    assert t == "| a | n |\n|---|---:|\n| x | 1 |\n| y |  |\n| z |  |"
    assert markdown_table(["a"], [], ["c"]).splitlines()[1] == "|:---:|"
    assert markdown_table(["a", "b"], []).splitlines()[1] == "|---|---|"
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [], "l")
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a"], [[1, 2]])
    with pytest.raises(ValueError, match="unknown alignment"):
        markdown_table(["a"], [], "x")
