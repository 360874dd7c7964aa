"""The package layout (issue 11): `sim`'s subpackages import one way, down the stack, and never in a cycle.

core (choices, clock, scheduler, runtime, trace) <- world (simulation, faults, workload, probes) <- search
(campaign, PCT, explorer, state machine) and scenario (the DSL) <- zoo <- chaos (real processes, which may
serve a zoo mutant) <- cli. `properties` reads the database
only and never imports `sim`; `engine` imports neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"sim.core": 0, "sim.world": 1, "sim.search": 2, "sim.scenario": 2, "sim.zoo": 3, "sim.chaos": 4,
          "sim.cli": 5}
PACKAGES = ("engine", "properties", "sim")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of this repository that `path` imports (function-level imports too, unless told not to)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _layer(module: str) -> tuple[str, int] | None:
    for package, rank in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return package, rank
    return None


def test_sim_is_split_into_the_layered_subpackages() -> None:
    """Every module of sim/ (but the package's own __init__) lives in one of the layer subpackages."""
    stray = [m for m in _modules() if m.startswith("sim.") and _layer(m) is None]
    assert stray == []


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith("sim")))
def test_sim_imports_only_go_down_the_stack(module: str) -> None:
    """A sim module imports its own subpackage or a lower layer, never a sibling of its own layer or above."""
    here = _layer(module)
    for target in _imports(_modules()[module], top_level_only=False):
        there = _layer(target)
        if here is None or there is None or there[0] == here[0]:
            continue
        assert there[1] < here[1], f"{module} imports {target}: {there[0]} is not below {here[0]}"


def test_properties_never_import_sim_and_engine_imports_neither() -> None:
    """properties/ judges the engine's database only; engine/ knows nothing of the harness (DESIGN §1)."""
    wrong = [(m, t) for m, p in _modules().items() for t in _imports(p, top_level_only=False)
             if (m.startswith("properties") and t.startswith("sim"))
             or (m.startswith("engine") and t.split(".")[0] in ("sim", "properties"))]
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    """Module-level imports form no cycle (a cycle makes import order matter and hides layering mistakes)."""
    modules = _modules()
    graph = {m: {t for t in _imports(p, top_level_only=True) if t in modules and t != m}
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
