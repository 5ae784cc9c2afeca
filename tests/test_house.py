"""The house of shared/DESIGN.md kept by structure: every import in fpoctl/ and policies/ (read with
`ast`, at any depth: inside functions and `if TYPE_CHECKING:` too) points down a floor, no files or
folders import each other in a circle, and the dashboard loads nothing through importlib."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fpoctl", "policies")

FLOORS: list[tuple[str, ...]] = [  # shared/DESIGN.md, "The house": top floor first
    ("fpoctl.cli",),
    ("fpoctl.commands",),
    ("fpoctl.dash",),
    ("fpoctl.jobs", "fpoctl.hub", "fpoctl.doctor"),
    ("fpoctl.train",),
    ("fpoctl.envs", "fpoctl.store"),
    ("fpoctl.settings", "fpoctl.sources", "fpoctl.fmt", "fpoctl.metric_names"),  # used on every floor
    ("fpoctl", "fpoctl.errors"),
    ("policies",),  # knows nothing of fpoctl
]
"""A unit (a folder of fpoctl, one of its top-level modules, or policies/) imports only units on
lower floors: never one above it, nor a neighbour on its own floor."""


class Arrow(NamedTuple):
    """One import: the importing module, where it stands, and the module it names."""

    source: str
    where: str
    target: str


@cache
def modules() -> dict[str, Path]:
    """Dotted name -> file of every module in the measured packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _known(name: str) -> str | None:
    """The longest prefix of `name` that is a measured module (None: outside the house)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement asks for (`from a import b` may name module a.b)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: counted from the importing module's package
        package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
    yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def arrows() -> tuple[Arrow, ...]:
    """Every import of a measured module by another one."""
    out = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(module, node):
                    target = _known(name)
                    if target is not None and target != module:
                        out.append(Arrow(module, f"{path.relative_to(ROOT)}:{node.lineno}", target))
    return tuple(out)


def unit(module: str) -> str:
    """The floor plan's unit of a module: its fpoctl folder or top-level module, or policies."""
    parts = module.split(".")
    return "policies" if parts[0] == "policies" else ".".join(parts[:2])


def floor(of_unit: str) -> int:
    """How high a unit stands (0: the ground)."""
    for height, units in enumerate(reversed(FLOORS)):
        if of_unit in units:
            return height
    raise KeyError(of_unit)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other along the graph's edges (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_stands_on_a_floor() -> None:
    placed = {u for units in FLOORS for u in units}
    unplaced = sorted({unit(m) for m in modules()} - placed)
    assert not unplaced, f"give these a floor in FLOORS (see shared/DESIGN.md): {unplaced}"


def test_arrows_point_down_only() -> None:
    wrong = [f"{a.where}: {unit(a.source)} imports {a.target}" for a in arrows()
             if unit(a.source) != unit(a.target) and floor(unit(a.target)) >= floor(unit(a.source))]
    assert not wrong, "imports that do not point down a floor:\n" + "\n".join(wrong)


def test_no_folders_import_each_other_in_a_circle() -> None:
    graph: dict[str, set[str]] = {}
    for a in arrows():
        if unit(a.source) != unit(a.target):
            graph.setdefault(unit(a.source), set()).add(unit(a.target))
    found = circles(graph)
    assert not found, "folders in a circle: " + "; ".join(", ".join(c) for c in found)


def test_no_files_import_each_other_in_a_circle() -> None:
    graph: dict[str, set[str]] = {}
    for a in arrows():
        graph.setdefault(a.source, set()).add(a.target)
    found = circles(graph)
    assert not found, "files in a circle: " + "; ".join(", ".join(c) for c in found)


def _loads_through_importlib(node: ast.AST) -> bool:
    """Whether a node imports importlib or names `__import__`."""
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "importlib" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "importlib"
    return isinstance(node, ast.Name) and node.id == "__import__"


def test_the_dashboard_imports_what_it_calls_plainly() -> None:
    uses = [f"{path.relative_to(ROOT)}:{node.lineno}" for module, path in modules().items()
            if unit(module) == "fpoctl.dash"
            for node in ast.walk(ast.parse(path.read_text(), str(path))) if _loads_through_importlib(node)]
    assert not uses, f"fpoctl/dash loads modules through importlib: {uses}"


def test_the_floor_plan_keeps_the_rules_design_states() -> None:
    """DESIGN.md's rules in words, so that an edit of FLOORS cannot quietly allow what they forbid."""
    for low in ("fpoctl.train", "fpoctl.envs", "fpoctl.store"):
        assert all(floor(low) < floor(high) for high in ("fpoctl.hub", "fpoctl.jobs", "fpoctl.dash",
                                                         "fpoctl.commands"))
    assert floor("fpoctl.envs") < floor("fpoctl.train") and floor("fpoctl.store") < floor("fpoctl.train")
    assert floor("policies") == 0  # knows nothing of fpoctl


def test_a_circle_is_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
