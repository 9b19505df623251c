"""CSV cells a spreadsheet will not run: the one helper every CSV writer of the package uses
(``emoedge export``, the deployment's ``summaries.csv``, ``emoedge fleet export``, ``/intervals.csv``).

OWASP's rule for CSV injection: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is a formula to Excel, LibreOffice and Sheets (a room named ``=HYPERLINK(...)``),
so it is written with a single quote in front. Numbers stay numbers: an ``int``/``float`` or a
text that is a plain number (``-0.25``, ``1e-3``) is written as it is. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value):
    """``value`` as a CSV cell no spreadsheet evaluates (text only; numbers unchanged)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable) -> list:
    """A row for ``csv.writer.writerow`` with every text cell made safe."""
    return [safe_cell(v) for v in values]
