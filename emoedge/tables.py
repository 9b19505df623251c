"""Markdown tables: the one helper every report, model card and command that prints a table uses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_RULE = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(headers: Sequence[object], rows: Iterable[Sequence[object]],
                   align: str | Sequence[str] | None = None) -> str:
    """A GitHub Markdown table: a header row, the rule, one line per row; no trailing newline.

    ``align`` has one letter per column, ``l`` (left, the default), ``r`` (right, for numbers) or
    ``c`` (centre), as a string (``"llrr"``) or a sequence; None: every column left. Cells are
    written with ``str``, None as an empty cell; a row shorter than the header is padded with empty
    cells, a longer one is an error. Cells are not escaped: format them before (a ``|`` inside a
    cell splits it)."""
    headers = [str(h) for h in headers]
    n = len(headers)
    if n == 0:
        raise ValueError("a table needs at least one column")
    letters = list(align) if align is not None else ["l"] * n
    if len(letters) != n:
        raise ValueError(f"align has {len(letters)} column(s), the header {n}")
    bad = [a for a in letters if a not in _RULE]
    if bad:
        raise ValueError(f"unknown alignment(s) {bad}; use l, r or c")
    lines = [_line(headers), "|" + "|".join(_RULE[a] for a in letters) + "|"]
    for row in rows:
        cells = ["" if c is None else str(c) for c in row]
        if len(cells) > n:
            raise ValueError(f"a row has {len(cells)} cells, the header {n}: {cells}")
        lines.append(_line(cells + [""] * (n - len(cells))))
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
