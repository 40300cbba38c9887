"""The packages' import graph, read from the source (every import: module level, inside functions and
under TYPE_CHECKING): no cycle between modules; the core never imports Airflow or the Airflow layer;
the real API client never imports the simulator; the simulator's generators never import its market."""

from __future__ import annotations

import ast
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include"
PACKAGES = ("gogoku", "gogoku_airflow")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (INCLUDE / package).rglob("*.py"):
            parts = list(path.relative_to(INCLUDE).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """The project modules (and the first component of outside ones) that `path` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    out = set()
    for name in names:
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        out.add(name)
    return out - {module}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(p, m, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    assert len(edges) > 90  # every module was read
    assert cycles(edges) == []


def test_a_cycle_is_found() -> None:  # the check itself
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layers_import_downwards_only() -> None:
    edges = graph()
    core = {m: deps for m, deps in edges.items() if m.split(".")[0] == "gogoku"}
    assert not {m for m, deps in core.items() if any(d.split(".")[0] in ("airflow", "gogoku_airflow") for d in deps)}
    assert not {m for m, deps in core.items() if m.startswith("gogoku.jquants") and any(
        d.startswith("gogoku.sim") for d in deps)}
    generators = ("gogoku.sim.base", "gogoku.sim.signal", "gogoku.sim.tables", "gogoku.sim.derivatives",
                  "gogoku.sim.statements", "gogoku.sim.oracle")
    assert not {m for m in generators if "gogoku.sim.market" in core[m]}
    # The Airflow layer reaches the core only through the CLI, and its one shared leaf module.
    airflow_side = {m: deps for m, deps in edges.items() if m.split(".")[0] == "gogoku_airflow"}
    assert {d for deps in airflow_side.values() for d in deps if d.split(".")[0] == "gogoku"} <= {
        "gogoku.contracts", "gogoku.calendar"}
