"""Automatic mutation testing of `engine/`, judged by the searches alone: the judge of the judge.

A small AST mutator (no library here fits a "run only the searches" judge): every function and method of the
chosen engine modules is parsed from its own source, and each mutable node yields mutants — comparison
operators swapped (< <=, > >=, == !=, is / is not, in / not in), `and`/`or` swapped, a `not` dropped,
arithmetic swapped (+ -, * /), integer constants moved by one, boolean returns flipped, call statements and
`raise`s removed, and inside SQL strings comparisons swapped and each WHERE condition replaced by `1=1`.
Trace and checkpoint calls are left alone: they are the simulator's hooks, not behaviour.

A mutant is the function recompiled with one change and swapped in (`sim.zoo.patching.Patcher`), like the
zoo's hand-written mutants. It is then run against seeded fuzz campaigns (default and swarm profiles) and the
smallest explorer configuration — never an example test. Killed: some search reports a violation. Otherwise
its traces are compared with the clean engine's on the same seeds: "unchanged" (no seed behaved differently:
equivalent, or never reached by these seeds) or "survived" (behaviour changed and no property noticed: a gap
in the oracle).
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import textwrap
import types
from collections.abc import Iterator
from typing import Any

import attrs

import __future__

from sim.zoo.patching import Patcher

MODULES = (
    "engine._txn",
    "engine._step",
    "engine._execution",
    "engine._runner",
    "engine._records",
    "engine._codec",
    "engine._engine",
)
_HOOKS = frozenset(
    {"trace", "_trace", "checkpoint", "_checkpoint", "_cp", "record"}
)  # simulator hooks, not behaviour
_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
}
_SQL_SWAPS = ((" <= ", " < "), (" < ", " <= "), (" >= ", " > "), (" > ", " >= "), (" = ", " != "))
_SQL_ENDS = (" AND ", " ORDER BY ", " LIMIT ", " GROUP BY ", ")", " RETURNING ")


@attrs.frozen
class Mutation:
    """One mutant: the `variant`-th change at the `node`-th node (ast.walk order) of function `owner`."""

    module: str
    owner: str  # "claim_txn" or "WorkflowStep.do"
    node: int
    variant: int
    line: int
    kind: str
    before: str
    after: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.owner}:{self.node}.{self.variant}"


def _functions(module_name: str) -> Iterator[tuple[str, Any, types.FunctionType]]:
    """(qualname, owner object, function) for the module's own functions and its classes' methods (written
    in its file: methods attrs generates are not the engine's code)."""
    module = importlib.import_module(module_name)

    def own(fn: types.FunctionType) -> bool:
        return fn.__code__.co_filename == module.__file__ and not fn.__closure__

    for name, value in sorted(vars(module).items()):
        if isinstance(value, types.FunctionType) and value.__module__ == module_name and own(value):
            yield name, module, value
        elif isinstance(value, type) and value.__module__ == module_name:
            for attr, member in sorted(vars(value).items()):
                if isinstance(member, types.FunctionType) and own(member):
                    yield f"{name}.{attr}", value, member


def _tree(fn: types.FunctionType) -> ast.Module:
    return ast.parse(textwrap.dedent(inspect.getsource(fn)))


def _is_hook(node: ast.AST) -> bool:
    call = node.value if isinstance(node, ast.Expr) else None
    if isinstance(call, ast.Await):
        call = call.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in _HOOKS


def _sql_variants(text: str) -> list[tuple[str, str]]:
    """(kind, mutated text) for each comparison and each condition of an SQL string's WHERE clause; a dropped
    condition keeps its `?` placeholders (`? IS NOT NULL`) so the statement still binds its arguments."""
    upper = text.upper()
    where = upper.find(" WHERE ")
    if where < 0:
        return []
    out = []
    for old, new in _SQL_SWAPS:
        start = where
        while (at := text.find(old, start)) >= 0:
            out.append(("sql-compare", text[:at] + new + text[at + len(old) :]))
            start = at + len(old)
    for keyword in (" WHERE ", " AND "):
        start = where
        while (at := upper.find(keyword, start)) >= 0:
            begin = at + len(keyword)
            ends = [e for e in (upper.find(end, begin) for end in _SQL_ENDS) if e >= 0]
            stop = min(ends) if ends else len(text)
            condition = text[begin:stop]
            if condition.strip():
                kept = " AND ".join(["? IS NOT NULL"] * condition.count("?")) or "1=1"
                out.append(("sql-condition", f"{text[:begin]}({kept}){text[stop:]}"))
            start = begin
    return out


def _variants(node: ast.AST, parent_is_docstring: bool) -> list[tuple[str, ast.AST | None, str]]:
    """(kind, replacement node, text of the change) for one node; None as replacement removes a statement."""
    out: list[tuple[str, ast.AST | None, str]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _SWAPS:
                new = copy.deepcopy(node)
                new.ops[i] = _SWAPS[type(op)]()
                out.append(("compare", new, ast.unparse(new)))
    elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAPS:
        new = copy.deepcopy(node)
        new.op = _SWAPS[type(node.op)]()
        out.append(("boolop", new, ast.unparse(new)))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("not", copy.deepcopy(node.operand), ast.unparse(node.operand)))
    elif isinstance(node, ast.BinOp) and type(node.op) in _SWAPS:
        new = copy.deepcopy(node)
        new.op = _SWAPS[type(node.op)]()
        out.append(("arith", new, ast.unparse(new)))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append(("constant", ast.Constant(node.value + 1), str(node.value + 1)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not parent_is_docstring:
        if any(k in node.value.upper() for k in ("SELECT ", "UPDATE ", "DELETE ", "INSERT ")):
            out += [(kind, ast.Constant(text), text) for kind, text in _sql_variants(node.value)]
    elif (
        isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and type(node.value.value) is bool
    ):
        out.append(
            ("return", ast.Return(ast.Constant(not node.value.value)), f"return {not node.value.value}")
        )
    elif isinstance(node, (ast.Expr, ast.Raise)) and not _is_hook(node) and not parent_is_docstring:
        out.append(("remove", None, "pass"))
    return out


def _walk(fn_tree: ast.Module) -> Iterator[tuple[int, ast.AST, ast.AST | None, bool]]:
    """(index, node, parent, is a docstring) in a fixed order, the function's own nodes only."""
    parents: dict[int, ast.AST] = {}
    for parent in ast.walk(fn_tree):
        for child in ast.iter_child_nodes(parent):
            parents[id(child)] = parent
    func = fn_tree.body[0]
    docstring = None
    if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and func.body:
        first = func.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            docstring = first
    for index, node in enumerate(ast.walk(func)):
        in_doc = docstring is not None and (node is docstring or node is docstring.value)
        is_annotation = isinstance(parents.get(id(node)), ast.arg)
        if not is_annotation:
            yield index, node, parents.get(id(node)), in_doc


def mutations(modules: tuple[str, ...] = MODULES) -> list[Mutation]:
    """Every mutant of the modules' functions, in a fixed order."""
    out = []
    for module in modules:
        for owner, _, fn in _functions(module):
            tree = _tree(fn)
            first_line = fn.__code__.co_firstlineno
            for index, node, _, in_doc in _walk(tree):
                for variant, (kind, _, text) in enumerate(_variants(node, in_doc)):
                    before = ast.unparse(node) if not isinstance(node, ast.Module) else ""
                    line = first_line + getattr(node, "lineno", 1) - 1
                    out.append(Mutation(module, owner, index, variant, line, kind, before[:100], text[:100]))
    return out


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST | None) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> Any:
        if node is self.target:
            return self.replacement if self.replacement is not None else ast.Pass()
        return super().visit(node)


def apply_mutation(mutation: Mutation, patch: Patcher) -> None:
    """Swap in the function with the mutation applied (undone by `patch.undo()`)."""
    for owner, target, fn in _functions(mutation.module):
        if owner != mutation.owner:
            continue
        tree = _tree(fn)
        for index, node, _, in_doc in _walk(tree):
            if index == mutation.node:
                _, replacement, _ = _variants(node, in_doc)[mutation.variant]
                tree = ast.fix_missing_locations(_Replace(node, replacement).visit(tree))
                code = compile(
                    tree,
                    f"<mutant {mutation.id}>",
                    "exec",
                    flags=__future__.annotations.compiler_flag,
                    dont_inherit=True,
                )
                inner = next(
                    c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == fn.__name__
                )
                mutant = types.FunctionType(inner, fn.__globals__, fn.__name__, fn.__defaults__)
                mutant.__kwdefaults__, mutant.__qualname__ = fn.__kwdefaults__, fn.__qualname__
                patch.setattr(target, fn.__name__, mutant)
                return
    raise KeyError(f"no mutation point {mutation.id}")


# --- judging a mutant by the searches ----------------------------------------------------------------------

PROFILES = ("default", "swarm")
HANG_BUDGET = 5.0  # wall seconds per seed: a mutant that spins fails its seed fast ("hang")
_CLEAN: dict[tuple[str, int], str] = {}  # (profile, seed) -> the clean engine's trace digest, per process


@attrs.frozen
class Verdict:
    """What the searches made of one mutant."""

    mutation: Mutation
    status: str  # killed | survived | unchanged | invalid
    by: str | None = None  # the property (or "crash") that killed it
    where: str | None = None  # "default seed 3", "explore steps3"
    seconds: float = 0.0


def _profile(name: str) -> Any:
    from sim.world.workload import get_profile

    return attrs.evolve(get_profile(name), hang_budget=HANG_BUDGET)


def _clean_digest(profile: str, seed: int) -> str:
    from sim.search.campaign import run_one

    key = (profile, seed)
    if key not in _CLEAN:
        _CLEAN[key] = run_one(seed, _profile(profile))[0].digest
    return _CLEAN[key]


def judge(job: tuple[Mutation, int]) -> Verdict:
    """Run the searches (seeded fuzz on each profile, then the explorer's steps3) against one mutant."""
    import time

    from sim.search.campaign import run_one
    from sim.search.explore import CONFIGS, explore

    mutation, seeds = job
    started = time.perf_counter()
    for name in PROFILES:  # the clean digests first, with the real engine in place
        for seed in range(seeds):
            _clean_digest(name, seed)
    patch = Patcher()
    try:
        apply_mutation(mutation, patch)
    except Exception as exc:  # noqa: BLE001 - a mutant that does not compile is no mutant
        patch.undo()
        return Verdict(mutation, "invalid", by=type(exc).__name__)
    try:
        changed = False
        for name in PROFILES:
            profile = _profile(name)
            for seed in range(seeds):
                try:
                    outcome = run_one(seed, profile)[0]
                except Exception as exc:  # noqa: BLE001 - the harness itself fell over: the mutant broke it
                    return Verdict(
                        mutation,
                        "killed",
                        f"crash ({type(exc).__name__})",
                        f"{name} seed {seed}",
                        time.perf_counter() - started,
                    )
                if not outcome.ok:
                    prop = (outcome.violation or "?").split(":")[0]
                    return Verdict(
                        mutation, "killed", prop, f"{name} seed {seed}", time.perf_counter() - started
                    )
                changed = changed or outcome.digest != _clean_digest(name, seed)
        stats = explore(CONFIGS["steps3"])
        if stats.violation is not None:
            return Verdict(
                mutation,
                "killed",
                stats.violation.split(":")[0],
                "explore steps3",
                time.perf_counter() - started,
            )
        return Verdict(
            mutation, "survived" if changed else "unchanged", seconds=time.perf_counter() - started
        )
    finally:
        patch.undo()


def render(verdicts: list[Verdict], seeds: int, seconds: float) -> str:
    """reports/mutation.md: the score, per module, and every mutant the searches let through."""
    count = {s: sum(v.status == s for v in verdicts) for s in ("killed", "survived", "unchanged", "invalid")}
    judged = count["killed"] + count["survived"]
    lines = [
        "# Mutation testing of engine/ by the searches alone",
        "",
        f"Generated by `stepsim mutate --seeds {seeds}` in {seconds / 60:.1f} min: {len(verdicts)} mutants "
        f"of {', '.join(f'`{m}`' for m in sorted({v.mutation.module for v in verdicts}))}, each judged by "
        f"{seeds} "
        f"seeds of each of the {', '.join(PROFILES)} fuzz profiles and the explorer's steps3 configuration "
        "(no example test, no scenario). Killed: a search reported a violation. Unchanged: on every seed the "
        "mutant's trace equals the clean engine's (equivalent, or never reached by these seeds). Survived: "
        "behaviour changed and no property noticed.",
        "",
        f"**Score: {count['killed']} killed of {judged} mutants that changed behaviour "
        f"({100.0 * count['killed'] / max(1, judged):.1f}%)**; {count['unchanged']} unchanged, "
        f"{count['invalid']} invalid.",
        "",
        "| module | mutants | killed | survived | unchanged | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for module in sorted({v.mutation.module for v in verdicts}):
        mine = [v for v in verdicts if v.mutation.module == module]
        k, s, u = (sum(v.status == x for v in mine) for x in ("killed", "survived", "unchanged"))
        lines.append(f"| `{module}` | {len(mine)} | {k} | {s} | {u} | {100.0 * k / max(1, k + s):.1f}% |")
    killers: dict[str, int] = {}
    for v in verdicts:
        if v.status == "killed" and v.by:
            killers[v.by] = killers.get(v.by, 0) + 1
    lines += ["", "## What killed them", "", "| property | mutants |", "|---|---:|"]
    lines += [f"| {prop} | {n} |" for prop, n in sorted(killers.items(), key=lambda kv: -kv[1])]
    lines += [
        "",
        "## Surviving mutants (behaviour changed, nothing noticed)",
        "",
        "| where | kind | before | after |",
        "|---|---|---|---|",
    ]
    for v in verdicts:
        if v.status == "survived":
            m = v.mutation
            lines.append(
                f"| `{m.module}:{m.line}` {m.owner} | {m.kind} | `{_cell(m.before)}` | `{_cell(m.after)}` |"
            )
    lines += ["", "## Unchanged mutants", "", "| where | kind | before | after |", "|---|---|---|---|"]
    for v in verdicts:
        if v.status == "unchanged":
            m = v.mutation
            lines.append(
                f"| `{m.module}:{m.line}` {m.owner} | {m.kind} | `{_cell(m.before)}` | `{_cell(m.after)}` |"
            )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")[:90]


__all__ = ["MODULES", "Mutation", "Verdict", "apply_mutation", "judge", "mutations", "render"]
