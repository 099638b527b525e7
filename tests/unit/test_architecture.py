"""The architecture of jailer/, cgroups/ and images/, read with ast (nothing is imported): the
layer contract of the table below, no import circles, at most two private names imported across
modules, no function of 80 lines or more. Module-level and function-level imports count alike.

The graph is drawn as the project's review hook draws it: ``from P import X`` is an edge to
module ``P.X`` if that is a module of the tree, else to ``P``; a package's ``__init__`` is the
module named like the package; circles are looked for with package ``__init__`` files left out
(a package that re-exports its modules would otherwise tie everything into one knot).
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("jailer", "cgroups", "images")
LONG_FUNCTION = 80  # lines, decorators left out: a function this long or longer is too long
MAX_PRIVATE_IMPORTS = 2

# ── the layer contract: top to bottom ────────────────────────────────────────────────────────
# layer: (its modules, the layers it may import besides its own). "P.*" is package P and every
# module below it; a name without ".*" is that one module.
LAYERS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "top": (("jailer", "jailer.__main__", "jailer.main", "jailer.api"),
            frozenset({"cli", "objects", "frontends", "engine", "policy", "kernel", "core",
                       "cgroups", "images"})),
    "cli": (("jailer.cli.*",),
            frozenset({"bench", "objects", "frontends", "engine", "policy", "kernel", "core",
                       "cgroups", "images"})),
    "bench": (("jailer.bench.*",),
              frozenset({"objects", "frontends", "engine", "policy", "kernel", "core",
                         "cgroups", "images"})),
    "objects": (("jailer.objects.*",),
                frozenset({"frontends", "engine", "policy", "kernel", "core", "cgroups",
                           "images"})),
    "frontends": (("jailer.frontends.*",),  # sibling of engine: neither imports the other
                  frozenset({"policy", "kernel", "core", "cgroups", "images"})),
    "engine": (("jailer.engine.*",),
               frozenset({"policy", "kernel", "core", "cgroups", "images"})),
    "policy": (("jailer.policy.*",), frozenset({"kernel", "core"})),
    "kernel": (("jailer.kernel.*",), frozenset({"core"})),
    "core": (("jailer.core.*",), frozenset()),
    "cgroups": (("cgroups.*",), frozenset()),  # standalone libraries: never import jailer
    "images": (("images.*",), frozenset()),
}
IMPORTED_ONLY_BY = {"bench": frozenset({"jailer.cli.bench"})}  # layer: the modules that may
STDLIB_ONLY = frozenset({"core"})  # layers that import nothing outside the standard library


# ── the import graph ─────────────────────────────────────────────────────────────────────────
@dataclass
class Tree:
    """The modules of some packages below ``root``, and what each imports."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)     # module -> its file
    edges: dict[str, set[str]] = field(default_factory=dict)  # module -> modules of the tree
    external: dict[str, set[str]] = field(default_factory=dict)  # module -> other top names
    private: list[str] = field(default_factory=list)          # "M imports T._x"
    long: list[tuple[int, str]] = field(default_factory=list)  # (lines, "M.function")

    @classmethod
    def read(cls, root: Path, packages: tuple[str, ...]) -> Tree:
        tree = cls(root)
        for pkg in packages:
            for d, dirs, names in os.walk(root / pkg):
                dirs[:] = sorted(x for x in dirs if x != "__pycache__")
                for name in sorted(names):
                    if name.endswith(".py"):
                        path = Path(d, name)
                        mod = ".".join(path.relative_to(root).with_suffix("").parts)
                        tree.files[mod.removesuffix(".__init__")] = path
        for mod in tree.files:
            tree.scan(mod)
        return tree

    def is_package(self, mod: str) -> bool:
        return self.files[mod].name == "__init__.py"

    def resolve(self, mod: str, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
        """(imported module or package, imported name or None) for each name of ``node``."""
        if isinstance(node, ast.Import):
            return [(a.name, None) for a in node.names]
        name = node.module or ""
        if node.level:
            parts = mod.split(".")
            parts = parts[:len(parts) - node.level + (1 if self.is_package(mod) else 0)]
            name = ".".join(parts + ([node.module] if node.module else []))
        return [(f"{name}.{a.name}" if f"{name}.{a.name}" in self.files else name, a.name)
                for a in node.names]

    def owner(self, name: str) -> str | None:
        """The module of the tree that ``name`` (a dotted import) is, or lies in."""
        while name and name not in self.files:
            name = name.rpartition(".")[0]
        return name or None

    def is_module_file(self, pkg: str, name: str) -> bool:
        """Is ``name`` a module file (.py or an extension such as cffi's _native) of ``pkg``?"""
        return self.is_package(pkg) and any(
            f.split(".")[0] == name for f in os.listdir(self.files[pkg].parent))

    def scan(self, mod: str) -> None:
        path = self.files[mod]
        self.edges[mod], self.external[mod] = set(), set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target, name in self.resolve(mod, node):
                    self.add_edge(mod, target, name, node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines >= LONG_FUNCTION:
                    self.long.append((lines, f"{mod}.{node.name} ({path.name}:{node.lineno})"))

    def add_edge(self, mod: str, target: str, name: str | None, node: ast.AST) -> None:
        owner = self.owner(target)
        if owner is None:
            if not (isinstance(node, ast.ImportFrom) and node.level):
                self.external[mod].add(target.partition(".")[0])
            return
        if owner == mod:
            return
        self.edges[mod].add(owner)
        if (name and name.startswith("_") and not name.startswith("__")
                and not self.is_module_file(owner, name)):
            self.private.append(f"{mod} imports {owner}.{name}")

    def circles(self) -> list[list[str]]:
        """Strongly connected components of two or more modules, package inits left out."""
        inits = {m for m in self.files if self.is_package(m)}
        graph = {m: sorted(t for t in ts if t not in inits)
                 for m, ts in self.edges.items() if m not in inits}
        return strongly_connected(graph)


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


# ── the contract ─────────────────────────────────────────────────────────────────────────────
def layer_of(mod: str, layers=LAYERS) -> str | None:
    """The layer whose most specific pattern names ``mod``."""
    best, best_len = None, -1
    for layer, (patterns, _) in layers.items():
        for p in patterns:
            base = p.removesuffix(".*")
            hit = mod == base or (p.endswith(".*") and mod.startswith(base + "."))
            if hit and len(base) > best_len:
                best, best_len = layer, len(base)
    return best


def layer_violations(tree: Tree, layers=LAYERS, only_by=IMPORTED_ONLY_BY,
                     stdlib_only=STDLIB_ONLY) -> list[str]:
    """Every import that breaks the contract, and every module in no layer."""
    out = []
    for mod in sorted(tree.edges):
        here = layer_of(mod, layers)
        if here is None:
            out.append(f"{mod}: in no layer")
            continue
        allowed = layers[here][1]
        for target in sorted(tree.edges[mod]):
            there = layer_of(target, layers)
            if there is None or there == here:
                continue  # a module in no layer is reported once, as itself
            if there not in allowed:
                out.append(f"{mod} ({here}) imports {target} ({there})")
            elif there in only_by and mod not in only_by[there]:
                out.append(f"{mod} ({here}) imports {target} ({there}: only "
                           f"{', '.join(sorted(only_by[there]))} may)")
        if here in stdlib_only:
            for name in sorted(tree.external[mod] - set(sys.stdlib_module_names) - {"__future__"}):
                out.append(f"{mod} ({here}) imports {name} (not the standard library)")
    return out


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree.read(REPO, PACKAGES)


def test_the_tree_is_read(tree):
    assert {"jailer.main", "cgroups", "images"} <= set(tree.files)
    assert tree.edges["jailer.main"], "jailer.main imports nothing of the tree?"


def test_layer_contract(tree):
    bad = layer_violations(tree)
    assert not bad, "imports against the layer contract:\n  " + "\n  ".join(bad)


def test_libraries_never_import_jailer(tree):
    bad = [f"{m} imports {t}" for m in sorted(tree.edges) if layer_of(m) in ("cgroups", "images")
           for t in sorted(tree.edges[m]) if t == "jailer" or t.startswith("jailer.")]
    assert not bad, "cgroups/images import jailer:\n  " + "\n  ".join(bad)


def test_no_import_circles(tree):
    circles = tree.circles()
    assert not circles, "import circles:\n  " + "\n  ".join(" <-> ".join(c) for c in circles)


def test_at_most_two_private_names_imported_across_modules(tree):
    private = tree.private
    assert len(private) <= MAX_PRIVATE_IMPORTS, (
        f"{len(private)} private names imported across modules (at most "
        f"{MAX_PRIVATE_IMPORTS}):\n  " + "\n  ".join(private))


def test_no_function_of_80_lines_or_more(tree):
    long = [f"{n} lines: {f}" for n, f in sorted(tree.long, reverse=True)]
    assert not long, f"functions of {LONG_FUNCTION}+ lines:\n  " + "\n  ".join(long)


# ── the checker itself, on a made-up tree ────────────────────────────────────────────────────
MADE_UP = {
    "app/__init__.py": "from app import low  # re-export: left out of the circle search\n",
    "app/low/__init__.py": "",
    "app/low/base.py": "import json\nimport click\n",
    "app/low/_ext.abi3.so": "",
    "app/low/util.py": "from . import _ext\nfrom .base import _hidden\nfrom app.high import ui\n",
    "app/high/__init__.py": "",
    "app/high/ui.py": "def f():\n    from ..low import util\n" + "    x = 1\n" * 78,
    "app/high/other.py": "from app.high.ui import f\nfrom app.low.util import _helper\n",
    "app/stray.py": "",
}
MADE_UP_LAYERS = {"high": (("app.high.*", "app"), frozenset({"low"})),
                  "low": (("app.low.*",), frozenset())}


@pytest.fixture
def made_up(tmp_path) -> Tree:
    for name, text in MADE_UP.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return Tree.read(tmp_path, ("app",))


def test_checker_finds_circles_through_function_level_imports(made_up):
    assert made_up.circles() == [["app.high.ui", "app.low.util"]]


def test_checker_finds_private_names_but_not_private_modules(made_up):
    assert made_up.private == ["app.high.other imports app.low.util._helper",
                               "app.low.util imports app.low.base._hidden"]


def test_checker_finds_long_functions(made_up):
    assert [f.split(" ")[0] for _, f in made_up.long] == ["app.high.ui.f"]
    assert made_up.long[0][0] == LONG_FUNCTION


def test_checker_finds_layer_violations(made_up):
    assert layer_violations(made_up, MADE_UP_LAYERS, {}, frozenset({"low"})) == [
        "app.low.base (low) imports click (not the standard library)",
        "app.low.util (low) imports app.high.ui (high)",
        "app.stray: in no layer",
    ]
    only = {"low": frozenset({"app.high.ui"})}
    assert "app.high.other (high) imports app.low.util (low: only app.high.ui may)" in \
        layer_violations(made_up, MADE_UP_LAYERS, only, frozenset())
