"""`stepsim coverage`: how much of `engine/` the fuzz campaigns alone reach, as reports/coverage.md.

Branch coverage (coverage.py) of the engine while seeded campaigns run on every profile — no example test,
no scenario — so the figure says what the searches can judge at all: code they never run, no oracle can
check. Every branch left uncovered is listed with the reason it is out of the searches' reach, from
`REASONS` below; one without a reason is marked "unexplained" (a gap to close: extend the workload).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

_PRODUCTION = (
    "production wiring the simulator replaces: it injects SimRuntime (no threads, virtual time), SimStores "
    "over one in-memory database, a tracer and checkpoints; tests/engine run the production path"
)
_DEFINITION = (
    "definition or construction time (define_workflow, schemas, Engine(...)): before any search runs; "
    "tests/engine cover every refusal"
)
_DRIVERS = (
    "a driver the simulator does not use: run_until_idle and tick (tests/engine); each simulated process is "
    "a run_worker (one loop, or two in the pooled profile)"
)
_HARD_STOP = (
    "hard stop (cancelling run_worker's task): the simulator crashes processes instead, which write "
    "nothing more; tests/engine cover the cancellation clean-up"
)
_RETRIES = "Retries validated when user code builds it, not at a step call (tests/engine)"
_SCHEMAS = (
    "pydantic schemas: pydantic is a dev-only dependency, so the simulator's workflows use attrs and callable "
    "schemas (quote-workflow, m-script); tests/engine cover pydantic"
)
_MIGRATIONS = "migrating files of older versions: every simulated database is a copy of one migrated template"
_LIMIT = "10,000 steps in one run: too long for a seed; tests/engine cover the limit"
_USER_ONLY = "read by user code only (StepContext.idempotency_key, Status.is_terminal)"
_VANISHED = "a lifecycle call on an instance that vanished: instances are never deleted"
_FENCED = "a step write the fence let through but the row refuses: unreachable while the fence holds"
_UNSIGNED = (
    "callables inspect.signature cannot read (C builtins): such a callback could not report to the oracle; "
    "tests/engine cover them"
)
_RACE = (
    "reachable by the searches, not hit in this sweep: needs an event sent in the instant between a wait's "
    "commit and its hand-back, or a pause requested just before a drained runner releases"
)

# Why a line (by its stripped text, or a prefix of it) is not reached by simulated campaigns.
REASONS: dict[str, str] = {
    # production wiring
    "if self._checkpoint is not None": _PRODUCTION,
    "if self._tracer is not None": _PRODUCTION,
    "if self.tracer is not None": _PRODUCTION,
    "if runner is None": _PRODUCTION,
    "if self._executor is None": _PRODUCTION,
    "self._executor": _PRODUCTION,
    "return run_in_thread": _PRODUCTION,
    "context = contextvars.copy_context()": _PRODUCTION,
    "return asyncio.get_running_loop().run_in_executor": _PRODUCTION,
    "await asyncio.sleep(": _PRODUCTION,
    "return time.time()": _PRODUCTION,
    "return uuid.uuid4().hex": _PRODUCTION,
    "self.random = random.Random()": _PRODUCTION,
    "self.max_sync_threads": _PRODUCTION,
    'if path != ":memory:"': _PRODUCTION,
    'conn.execute("PRAGMA journal_mode=WAL")': _PRODUCTION,
    "if migrate_schema:": _PRODUCTION,
    "migrate(self.conn)": _PRODUCTION,
    "if self._owns_connection:": _PRODUCTION,
    "self.conn.close()": _PRODUCTION,
    "store = SqliteStore(database": _PRODUCTION,
    "self.store.close()": _PRODUCTION,
    "if buffer.strip():": _MIGRATIONS,
    'raise ValueError(f"incomplete SQL statement': _MIGRATIONS,
    "if done is None:": _MIGRATIONS,
    "if not self.names or max_tasks <= 0:": _PRODUCTION,
    "if tracer is None:": _PRODUCTION,
    "return 0": _PRODUCTION,
    # definition and construction
    "if not isinstance(definition, WorkflowDefinition)": _DEFINITION,
    'raise InvalidArgument(f"workflows must': _DEFINITION,
    "if self.lease <= 0": _DEFINITION,
    'raise InvalidArgument("lease must': _DEFINITION,
    "if store is None": _DEFINITION,
    'if database.startswith(("postgres': "PostgreSQL is issue 13",
    'raise InvalidArgument("the PostgreSQL': "PostgreSQL is issue 13",
    "if not isinstance(name, str) or not name:": _DEFINITION,
    'raise InvalidArgument(f"workflow name': _DEFINITION,
    "if len(name) > MAX_WORKFLOW_NAME": _DEFINITION,
    'raise NameTooLong(f"workflow name': _DEFINITION,
    "if not callable(func)": _DEFINITION,
    'raise InvalidArgument(f"workflow {name!r} needs': _DEFINITION,
    'elif isinstance(spec, type) and hasattr(spec, "model_validate")': _SCHEMAS,
    "elif callable(spec)": _DEFINITION,
    'raise InvalidArgument(f"schema must be': _DEFINITION,
    'self.kind = "pydantic"': _SCHEMAS,
    "async def __aenter__": _DEFINITION,
    "await self.close()": _PRODUCTION,
    "await self.stop()": _PRODUCTION,
    "return self": _DEFINITION,
    # schemas
    "if isinstance(raw, self.spec)": _SCHEMAS,
    "return raw": _SCHEMAS,
    "if not isinstance(raw, dict)": _SCHEMAS,
    'raise SchemaError([f"expected an object': _SCHEMAS,
    'if self.kind == "pydantic"': _SCHEMAS,
    "return self.spec.model_validate(raw)": _SCHEMAS,
    "raise SchemaError(_pydantic_messages": _SCHEMAS,
    'errors = getattr(exc, "errors", None)': _SCHEMAS,
    "if not callable(errors)": _SCHEMAS,
    "return [str(exc)]": _SCHEMAS,
    "out = []": _SCHEMAS,
    "for err in errors()": _SCHEMAS,
    "loc = ": _SCHEMAS,
    'out.append(f"{loc}': _SCHEMAS,
    "return out or [str(exc)]": _SCHEMAS,
    "if attrs.has(type(value))": _SCHEMAS,
    "return attrs.asdict(value)": _SCHEMAS,
    "if callable(dump)": _SCHEMAS,
    'return dump(mode="json")': _SCHEMAS,
    "if self.output is None": _SCHEMAS,
    "return self.output.to_json_value": _SCHEMAS,
    'error = ("OutputValidationError"': _SCHEMAS,
    'error = ("InvalidParams"': "params stored before a schema change: params are validated at create",
    "except SchemaError as exc": _SCHEMAS,
    # drivers and stops
    "total = 0": _DRIVERS,
    "for _ in range(max_ticks)": _DRIVERS,
    "processed = await self.runner.tick(100)": _DRIVERS,
    "if processed == 0": _DRIVERS,
    "return total": _DRIVERS,
    "total += processed": _DRIVERS,
    'raise RuntimeError(f"run_until_idle': _DRIVERS,
    "runners = [": _DRIVERS,
    "loops = [": _DRIVERS,
    "await asyncio.gather(*loops)": _DRIVERS,
    "for loop in loops": _DRIVERS,
    "loop.cancel()": _DRIVERS,
    "if concurrency <= 1": _DRIVERS,
    "return await self.runner.tick(max_tasks)": _DRIVERS,
    "if current is not None and current.cancelling()": _HARD_STOP,
    "raise  # we are being cancelled": _HARD_STOP,
    "except Exception:  # the callback's own reaction": _HARD_STOP,
    "work.cancel()": _HARD_STOP,
    "if self.stopped:": _HARD_STOP,
    'raise Abandoned("execution already stopped")': _HARD_STOP,
    "if self._heartbeat is not None": _HARD_STOP,
    "if not self._lost.done()": _HARD_STOP,
    # limits no seed reaches
    "if position >= MAX_STEPS_PER_RUN": _LIMIT,
    "raise TooManySteps": _LIMIT,
    'if row["step_key"] != key': (
        "needs workflow code that changes between runs (a deploy); "
        "scenarios/nondeterminism_detection.py covers it"
    ),
    "raise NondeterminismError": "needs workflow code that changes between runs (a deploy)",
    'error = ("NondeterminismError"': "needs workflow code that changes between runs (a deploy)",
    "self.expected = expected": "needs workflow code that changes between runs (a deploy)",
    "self.found = found": "needs workflow code that changes between runs (a deploy)",
    "self.position = position": "needs workflow code that changes between runs (a deploy)",
    "if value not in _BACKOFFS": _RETRIES,
    'raise ValueError(f"invalid backoff': _RETRIES,
    "if isinstance(value, bool) or not isinstance(value, int) or value < 0": _RETRIES,
    'raise ValueError(f"invalid retry limit': _RETRIES,
    # HTTP and records
    "if self.details is not None": "error bodies of the HTTP API (issue 15)",
    "body": "error bodies of the HTTP API (issue 15)",
    "return body": "error bodies of the HTTP API (issue 15)",
    "return self.message": "error bodies of the HTTP API",
    "return self in TERMINAL_STATUSES": _USER_ONLY,
    'return f"{self.workflow}:{self.instance_id}': _USER_ONLY,
    # rare interleavings
    "if waiting is not None and _first_event": _RACE,
    'run_at, kind = min(run_at, now), "wake"': _RACE,
    "if _pause_if(conn, claim, now, bool(requested))": _RACE,
    "if row is None:": _VANISHED,
    'raise InstanceNotFound(f"no instance': _VANISHED,
    "if cur.rowcount != 1:": _FENCED,
    'raise LeaseLost(f"step': _FENCED,
}


# Lines too generic for a prefix ("raise", "try:"), by file and exact text.
EXACT: dict[tuple[str, str], str] = {
    ("engine/_engine.py", "try:"): _DRIVERS,
    ("engine/_errors.py", "super().__init__("): "needs workflow code that changes between runs (a deploy)",
    ("engine/_execution.py", "except BaseException:"): _HARD_STOP,
    ("engine/_execution.py", "raise"): _HARD_STOP,
    ("engine/_execution.py", "pass"): _HARD_STOP,
    ("engine/_schema.py", "except BaseException:"): _MIGRATIONS,
    ("engine/_schema.py", 'conn.execute("ROLLBACK")'): _MIGRATIONS,
    ("engine/_schema.py", "raise"): _MIGRATIONS,
    ("engine/_step.py", "except (TypeError, ValueError):"): _UNSIGNED,
    ("engine/_txn.py", "return"): _RACE,
    ("engine/_workflow.py", "raise"): "a validator that raises SchemaError itself; tests/engine cover it",
    ("engine/_engine.py", "return None"): _PRODUCTION,
    ("engine/_workflow.py", "return self.spec.model_validate(raw)"): _SCHEMAS,
    ("engine/_workflow.py", "return await self.fn(event, step)"): (
        "WorkflowDefinition.__call__, for user code calling a workflow directly; runners call .fn"
    ),
    ("engine/_step.py", "cached = False"): _UNSIGNED,
}


def _reason(name: str, source: list[str], line: int) -> str:
    text = source[line - 1].strip() if 0 < line <= len(source) else ""
    exact = EXACT.get((name, text))
    if exact is not None:
        return exact
    for prefix, why in REASONS.items():
        if text.startswith(prefix):
            return why
    return "unexplained"


def measure(seeds: int, profiles: list[str]) -> dict[str, Any]:
    """Run `seeds` seeds of each profile (plus one PCT seed each) in a fresh interpreter under branch
    coverage of `engine/`, so module-level code counts too; return coverage.py's JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        data_file, out = Path(tmp) / ".coverage", Path(tmp) / "coverage.json"
        base = [sys.executable, "-m", "coverage"]
        subprocess.run(
            [
                *base,
                "run",
                "--branch",
                "--source=engine",
                f"--data-file={data_file}",
                "-m",
                "sim.cli.coverage",
                str(seeds),
                *profiles,
            ],
            check=True,
        )
        subprocess.run([*base, "json", f"--data-file={data_file}", "-o", str(out), "-q"], check=True)
        data: dict[str, Any] = json.loads(out.read_text())
    return data


def _sweep(seeds: int, profiles: list[str]) -> None:
    """The measured work: seeded campaigns on each profile, serially, in this process."""
    from sim.search.campaign import resolve_profile, run_one

    for name in profiles:
        prof = resolve_profile(name)
        for seed in range(seeds):
            run_one(seed, prof)
        run_one(0, prof, pct_depth=3)


def render(data: dict[str, Any], seeds: int, profiles: list[str], seconds: float) -> str:
    """reports/coverage.md from coverage.py's JSON report."""
    totals = data["totals"]
    lines = [
        "# Engine coverage reached by the searches alone",
        "",
        f"Generated by `stepsim coverage --seeds {seeds}`: {seeds} seeded runs of each fuzz profile "
        f"({', '.join(profiles)}), plus one PCT run each, under coverage.py branch coverage of `engine/` "
        f"({seconds:.0f} s). No example test or scenario contributes.",
        "",
        f"**Branches: {totals['covered_branches']} / {totals['num_branches']} "
        f"({100.0 * totals['covered_branches'] / max(1, totals['num_branches']):.1f}%)**; "
        f"statements: {totals['covered_lines']} / {totals['num_statements']} "
        f"({100.0 * totals['covered_lines'] / max(1, totals['num_statements']):.1f}%).",
        "",
        "| file | statements | missed | branches | partial | branch coverage |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    uncovered: list[str] = []
    for name, f in sorted(data["files"].items()):
        s = f["summary"]
        pct = 100.0 * s["covered_branches"] / s["num_branches"] if s["num_branches"] else 100.0
        lines.append(
            f"| `{name}` | {s['num_statements']} | {s['missing_lines']} | {s['num_branches']} | "
            f"{s['num_partial_branches']} | {pct:.1f}% |"
        )
        source = Path(name).read_text().splitlines() if Path(name).exists() else []
        for start, end in f.get("missing_branches", []):
            target = "exit" if end < 0 else f"line {end}"
            text = source[start - 1].strip() if 0 < start <= len(source) else ""
            uncovered.append(
                f"| `{name}:{start}` → {target} | `{text[:70]}` | {_reason(name, source, start)} |"
            )
        for line in f.get("missing_lines", []):
            text = source[line - 1].strip() if 0 < line <= len(source) else ""
            uncovered.append(f"| `{name}:{line}` (line) | `{text[:70]}` | {_reason(name, source, line)} |")
    lines += [
        "",
        "## Every uncovered branch and line, with the reason",
        "",
        "| where | code | why the searches do not reach it |",
        "|---|---|---|",
        *uncovered,
    ]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--seeds", default=300, show_default=True, help="seeds per profile")
@click.option("--profile", "profiles", multiple=True, help="only these profiles (default: all of them)")
@click.option("--out", default="reports/coverage.md", show_default=True, help="where the report goes")
@click.option("--min-branches", type=float, default=None, help="exit 1 below this branch coverage (%)")
def coverage_command(seeds: int, profiles: tuple[str, ...], out: str, min_branches: float | None) -> None:
    """Branch coverage of engine/ reached by seeded fuzz campaigns alone, written to OUT."""
    from sim.world.workload import PROFILES

    names = list(profiles) or list(PROFILES)
    started = time.perf_counter()
    data = measure(seeds, names)
    text = render(data, seeds, names, time.perf_counter() - started)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    totals = data["totals"]
    pct = 100.0 * totals["covered_branches"] / max(1, totals["num_branches"])
    click.echo(
        f"engine branch coverage by the searches: {pct:.1f}% "
        f"({totals['covered_branches']}/{totals['num_branches']}); report: {out}"
    )
    if min_branches is not None and pct < min_branches:
        raise SystemExit(1)


__all__ = ["coverage_command", "measure", "render"]

if __name__ == "__main__":  # the measured interpreter: python -m sim.cli.coverage SEEDS PROFILE...
    _sweep(int(sys.argv[1]), sys.argv[2:])
