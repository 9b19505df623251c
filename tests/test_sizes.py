"""Small modules with one job, short functions: no module of emoedge/ over 400 lines, no function over
80 (the CLI's argument registration may be longer, but is not today). A newcomer reads any function
in one screen and any module in one sitting."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "emoedge"
MODULE_LINES, FUNCTION_LINES = 400, 80


def _too_long() -> list[str]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel, src = path.relative_to(PKG.parent), path.read_text()
        if len(src.splitlines()) > MODULE_LINES:
            found.append(f"{rel}: {len(src.splitlines())} lines (at most {MODULE_LINES})")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > FUNCTION_LINES:
                    found.append(f"{rel}:{node.lineno}: {node.name} is {n} lines (at most {FUNCTION_LINES})")
    return found


def test_no_module_over_400_lines_and_no_function_over_80():
    assert _too_long() == []
