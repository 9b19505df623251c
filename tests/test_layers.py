"""The package's imports run one way: down the layers below, never up, never between train and
convert, and nothing imports the CLI. Read from the source (AST), so every import counts: at module
level and inside functions, ``import x`` and ``from x import y``, relative ones resolved, and the
Python scripts a module keeps in a string to run in a child process. README.md ("Layout") draws
the same table."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parents[1] / "emoedge"

# Bottom to top. A module may import its own subpackage, a subpackage of its own layer (unless
# the pair is in SEPARATE) and any lower layer; never a higher one. The package root
# (emoedge/__init__.py) is below everything and imports nothing of emoedge.
LAYERS: list[tuple[str, ...]] = [
    ("core",),               # 1 the shared base: errors, file I/O, formats, shipped models, preprocessing,
                             #   temperature, MACs, CSV cells, the HTTP Host guard (device libraries only)
    ("edge",),               # 2 the device side: numpy, OpenCV, LiteRT, yaml, stdlib (EDGE_LIBRARIES)
    ("data", "metrics", "tables", "recipes", "fleet"),  # 3 datasets and splits; scores; Markdown tables;
                                                        # recipes; the fleet store and page (paho-mqtt)
    ("keras",),              # 4 what every Keras user needs: tf_env, custom layers, loading .keras files
    ("evaluate",),           # 5 scoring on a split, temperature scaling, Grad-CAM
    ("train", "convert"),    # 6 siblings: training / conversion, model cards, shipping
    ("benchmarks",),         # 7 timing and comparing models, ensembles against members, soak runs
    ("cli", "__main__"),     # 8 the command (and `python -m emoedge`): imports anything; nothing imports it
]
# The device side's own layers, bottom to top: a module of emoedge.edge.X may import emoedge.edge.Y
# only when Y is X or below it.
EDGE_LAYERS: list[str] = ["engines", "faces", "inference", "outputs", "runtime", "deployment"]
DEVICE_SIDE = {"core", "edge"}   # never TensorFlow: only themselves and EDGE_LIBRARIES
SEPARATE = {frozenset({"train", "convert"})}  # same layer, yet neither may import the other
TOP = {"cli", "__main__"}  # nothing outside these imports them

# Third-party modules the device side may import: its dependencies, and optional ones imported
# only where a feature needs them (a Pi camera, ONNX models, plots, Prometheus metrics).
EDGE_LIBRARIES = {"numpy", "cv2", "ai_edge_litert", "tflite_runtime", "yaml",
                  "picamera2", "onnxruntime", "matplotlib", "prometheus_client", "paho"}

# Known breaks of the rules, each being fixed elsewhere: (module, imported module) -> why. Empty.
PENDING: dict[tuple[str, str], str] = {}

LAYER_OF = {part: i + 1 for i, parts in enumerate(LAYERS) for part in parts}


@dataclass(frozen=True)
class Import:
    module: str     # the importing module, e.g. emoedge.train.fusion
    file: str       # its path relative to the project
    line: int
    target: str     # the imported module, absolute (emoedge.convert.tflite, numpy, ...)
    text: str       # the import statement as written
    in_script: bool = False  # inside a string run as a script
    maybe_name: bool = False  # `from package import x`: x may be a name in the package, not a module

    def where(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`" + (" (in a script string)" if self.in_script else "")


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(name: str) -> str:
    """The top-level subpackage (or module) of emoedge a module belongs to; '' for the root."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(part: str) -> int:
    return 0 if part == "" else LAYER_OF[part]


def _targets(node: ast.AST, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """(imported module, whether it may be a name in a package instead) for each module imported."""
    if isinstance(node, ast.Import):
        return [(a.name, False) for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:  # relative: resolved against the importing module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level - 1 > len(base) - 1:
            raise AssertionError(f"{module}: relative import beyond the top-level package (level {node.level})")
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix == "emoedge" or (node.level and not node.module):
        # `from emoedge import edge` / `from . import layers`: each name may be a module
        return [(f"{prefix}.{a.name}", True) for a in node.names]
    # `from emoedge.train import steps` imports the package and, where a name is a module, that module
    return [(prefix, False)] + [(f"{prefix}.{a.name}", True) for a in node.names
                                if prefix.startswith("emoedge.") and _exists(f"{prefix}.{a.name}")]


def imports_in(source: str, module: str, file: str, is_package: bool, line0: int = 0,
               in_script: bool = False) -> list[Import]:
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            text = " ".join(ln.strip() for ln in lines[node.lineno - 1:node.end_lineno])
            for target, maybe_name in _targets(node, module, is_package):
                found.append(Import(module, file, line0 + node.lineno, target, text, in_script, maybe_name))
        elif (not in_script and isinstance(node, ast.Constant) and isinstance(node.value, str)
              and "import " in node.value and "\n" in node.value):
            try:  # a Python script kept in a string (run in a child process)
                ast.parse(node.value)
            except SyntaxError:
                continue
            found += imports_in(node.value, module, file, False, node.lineno - 1, True)
    return sorted(found, key=lambda i: i.line)


def all_imports() -> list[Import]:
    out = []
    for path in sorted(PKG_DIR.rglob("*.py")):
        out += imports_in(path.read_text(), module_name(path), str(path.relative_to(PKG_DIR.parent)),
                          path.name == "__init__.py")
    return out


def _internal(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target == "emoedge" or i.target.startswith("emoedge.")]


def _exists(module: str) -> bool:
    base = PKG_DIR.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def missing_modules(imports: list[Import]) -> list[str]:
    return [f"{i.where()}: there is no module {i.target}" for i in _internal(imports)
            if not _exists(i.target) and not (i.maybe_name and _exists(i.target.rsplit(".", 1)[0]))]


def upward_violations(imports: list[Import]) -> list[str]:
    bad, seen = [], set()
    for i in _internal(imports):
        src, dst = part_of(i.module), part_of(i.target)
        if (i.file, i.line, dst) in seen:
            continue  # `from package import module`: the package and the module, one statement, said once
        seen.add((i.file, i.line, dst))
        if src == dst or dst in TOP or (i.module, i.target) in PENDING or dst not in LAYER_OF:
            continue  # the CLI rule is its own test; a module that is not there, too
        ls, ld = layer_of(src), layer_of(dst)
        if ld > ls:
            bad.append(f"{i.where()}: {src or 'emoedge'} (layer {ls}) must not import {dst} (layer {ld}, higher)")
        elif ld == ls and frozenset({src, dst}) in SEPARATE:
            bad.append(f"{i.where()}: {src} must not import its sibling {dst} (layer {ls}; move the shared code "
                       f"down a layer, or the code using both up)")
        elif src == "" and ld > 0:
            bad.append(f"{i.where()}: the package root must not import {dst}")
    return bad


def cli_violations(imports: list[Import]) -> list[str]:
    return [f"{i.where()}: {i.module} imports the CLI ({i.target}); nothing but the CLI may"
            for i in _internal(imports)
            if part_of(i.target) in TOP and part_of(i.module) not in TOP and (i.module, i.target) not in PENDING
            and not (i.maybe_name and i.target.count(".") > 1)]


def edge_violations(imports: list[Import]) -> list[str]:
    std = set(sys.stdlib_module_names) | {"__future__"}
    bad, seen = [], set()
    for i in imports:
        if part_of(i.module) not in DEVICE_SIDE or (i.file, i.line, part_of(i.target)) in seen:
            continue
        seen.add((i.file, i.line, part_of(i.target)))
        top = i.target.split(".")[0]
        if top == "emoedge":
            if part_of(i.target) not in DEVICE_SIDE or layer_of(part_of(i.target)) > layer_of(part_of(i.module)):
                bad.append(f"{i.where()}: the device side (emoedge.{part_of(i.module)}) imports {i.target}: it imports "
                           f"only itself and what is below it")
        elif top not in std and top not in EDGE_LIBRARIES:
            bad.append(f"{i.where()}: the device side (emoedge.{part_of(i.module)}) imports {top}, not a device "
                       f"library ({', '.join(sorted(EDGE_LIBRARIES))})")
    return bad


def edge_part(name: str) -> str | None:
    """The device-side subpackage (engines, faces, ...) of an emoedge.edge module, else None."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "edge" and parts[2] in EDGE_LAYERS else None


def edge_layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for i in _internal(imports):
        src, dst = edge_part(i.module), edge_part(i.target)
        if src and dst and EDGE_LAYERS.index(dst) > EDGE_LAYERS.index(src):
            bad.append(f"{i.where()}: edge.{src} must not import edge.{dst} (higher on the device side: "
                       f"{' < '.join(EDGE_LAYERS)})")
    return bad


def _module_of(i: Import) -> str | None:
    """The module file an internal import loads: ``from package import name`` loads package.name when
    that is a module, else the package."""
    if i.maybe_name and _exists(i.target):
        return i.target
    if i.maybe_name:
        return i.target.rsplit(".", 1)[0] if _exists(i.target.rsplit(".", 1)[0]) else None
    return i.target if _exists(i.target) else None


def module_cycles(imports: list[Import]) -> list[str]:
    """Every import cycle between two or more modules (imports inside functions count: a cycle hidden in
    a function is still a cycle), as the strongly connected components of the module graph."""
    graph: dict[str, dict[str, Import]] = {}
    for i in _internal(imports):
        dst = _module_of(i)
        if dst and dst != i.module and not i.in_script:
            graph.setdefault(i.module, {}).setdefault(dst, i)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[str] = []

    def strong(v: str) -> None:           # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                members = set(comp)
                why = [graph[a][b].where() for a in sorted(members) for b in sorted(graph.get(a, {})) if b in members]
                found.append(" <-> ".join(sorted(members)) + ": " + "; ".join(why))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def cycles(imports: list[Import]) -> list[str]:
    """Every cycle between top-level subpackages, each edge with one import that makes it."""
    edges: dict[str, dict[str, Import]] = {}
    for i in _internal(imports):
        src, dst = part_of(i.module), part_of(i.target)
        if src != dst and (i.module, i.target) not in PENDING and dst in LAYER_OF:
            edges.setdefault(src, {}).setdefault(dst, i)
    found, seen = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, {})):
            if nxt in path:
                cyc = path[path.index(nxt):] + [nxt]
                key = frozenset(zip(cyc, cyc[1:]))
                if key not in seen:
                    seen.add(key)
                    found.append(" -> ".join(cyc) + ": " + "; ".join(
                        edges[a][b].where() for a, b in zip(cyc, cyc[1:])))
            else:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    return found


def _fail(problems: list[str], what: str) -> None:
    assert not problems, f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


def test_every_subpackage_has_a_layer():
    parts = {part_of(module_name(p)) for p in PKG_DIR.rglob("*.py")} - {""}
    _fail([f"emoedge.{p}: not in LAYERS (tests/test_layers.py); give it a layer"
           for p in sorted(parts - set(LAYER_OF))],
          "subpackage(s) without a layer")


def test_every_imported_module_of_emoedge_exists():
    _fail(missing_modules(all_imports()), "import(s) of a module that is not there (moved?)")


def test_imports_never_go_up_a_layer_or_across_train_and_convert():
    _fail(upward_violations(all_imports()), "import(s) against the layers")


def test_no_cycle_between_subpackages():
    _fail(cycles(all_imports()), "import cycle(s) between subpackages")


def test_no_cycle_between_modules():
    _fail(module_cycles(all_imports()), "import cycle(s) between modules")


def test_the_device_sides_subpackages_import_only_their_own_layer_or_below():
    _fail(edge_layer_violations(all_imports()), "import(s) against the device side's layers")


def test_the_device_side_imports_only_itself_and_device_libraries():
    _fail(edge_violations(all_imports()), "import(s) the device side may not make")


def test_nothing_imports_the_cli():
    _fail(cli_violations(all_imports()), "import(s) of the CLI")


def test_the_checker_sees_every_kind_of_import():
    src = '''
import numpy
from ..convert import tflite
def f():
    from emoedge.benchmarks import report
    import emoedge.cli
class C:
    def g(self):
        from . import trainer
SCRIPT = """
import sys
from emoedge.convert.ship import ship
"""
'''
    found = imports_in(src, "emoedge.train.fake", "emoedge/train/fake.py", False)
    assert [(i.line, i.target, i.in_script) for i in found if i.target.startswith("emoedge")] == [
        (3, "emoedge.convert", False), (3, "emoedge.convert.tflite", False), (5, "emoedge.benchmarks", False),
        (5, "emoedge.benchmarks.report", False), (6, "emoedge.cli", False),
        (9, "emoedge.train.trainer", False), (12, "emoedge.convert.ship", True)]
    up = upward_violations(found)
    assert len(up) == 3 and all("emoedge/train/fake.py:" in u for u in up)
    assert "train must not import its sibling convert" in up[0]
    assert "layer 7, higher" in up[1]
    assert len(cli_violations(found)) == 1
    edge_src = "import tensorflow\nfrom emoedge.data import datasets\nimport cv2, os\n"
    assert len(edge_violations(imports_in(edge_src, "emoedge.edge.x", "emoedge/edge/x.py", False))) == 2
    cyc = cycles([Import("emoedge.data.a", "a", 1, "emoedge.metrics", "x"),
                  Import("emoedge.metrics", "b", 2, "emoedge.data.datasets", "y")])
    assert len(cyc) == 1 and cyc[0].startswith("data -> metrics -> data")
    two = [Import("emoedge.edge.faces.detect", "d", 1, "emoedge.edge.faces.fetch", "x"),
           Import("emoedge.edge.faces.fetch", "f", 9, "emoedge.edge.faces.detect", "y")]
    assert [c.split(":")[0] for c in module_cycles(two)] == ["emoedge.edge.faces.detect <-> emoedge.edge.faces.fetch"]
    assert module_cycles(two[:1]) == []
    hidden = imports_in("def train():\n    from emoedge.train import steps\n", "emoedge.train.trainer",
                        "emoedge/train/trainer.py", False)
    back = [Import("emoedge.train.steps", "s", 1, "emoedge.train.trainer", "from emoedge.train.trainer import x")]
    assert len(module_cycles(hidden + back)) == 1      # `from package import module` is the module
    assert len(edge_layer_violations([Import("emoedge.edge.faces.detect", "d", 1, "emoedge.edge.runtime.config",
                                             "z")])) == 1
    assert len(edge_violations(imports_in("from emoedge.edge.runtime import config\n", "emoedge.core.x",
                                          "emoedge/core/x.py", False))) == 1
    assert missing_modules([Import("emoedge.convert.ship", "s", 1, "emoedge.calibrate", "t"),
                            Import("emoedge.convert.ship", "s", 2, "emoedge.edge.faces.fetch", "t", False, True),
                            Import("emoedge.convert.ship", "s", 3, "emoedge.edge.no_such_name", "t", False, True)]
                           ) == ["s:1: `t`: there is no module emoedge.calibrate"]
