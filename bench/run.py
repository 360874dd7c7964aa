"""Entry points: `run_benchmarks` (measure), `bench_command_main` (for `stepsim bench`), `main` (python -m bench)."""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from . import _engine_cases as engine_cases
from . import _postgres_cases as pg_cases
from ._dbos_cases import dbos_cases, load_dbos
from ._profile import pyinstrument_profile, statement_breakdown
from ._raw_sqlite import raw_commits
from ._records import BenchResults, Latency, Measurement, ProfileLine, Sizes, StatementLine
from ._report import markdown, print_results
from ._sim_case import simulator

DEFAULT_OUT = os.path.join("reports", "bench.md")


def _environment() -> dict[str, Any]:
    return {
        "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
    }


def run_benchmarks(
    repeats: int = 3, sizes: Sizes | None = None, include_dbos: bool = True, *, profile: bool = True,
    include_sim: bool = True, progress: Callable[[str], None] | None = None, postgres: str | None = None,
) -> BenchResults:
    """Measure every case once per repetition, in one run, and return the results (nothing is printed).

    A case whose work does not complete is recorded in `problems` and left out; the others still run.
    `postgres` (a server URL) adds the PostgreSQL rows: the engine's and DBOS's (a)-(c), (g) woken by
    NOTIFY, and (i) worker-process scaling there too.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sizes = sizes if sizes is not None else Sizes()
    say = progress if progress is not None else (lambda _message: None)
    measurements: list[Measurement] = []
    problems: list[str] = []
    latency: Latency | None = None
    profile_lines: tuple[ProfileLine, ...] = ()
    profile_note = "profile not requested"
    statements: tuple[StatementLine, ...] = ()

    def attempt(name: str, fn: Callable[[], Any]) -> Any:
        say(name)
        try:
            return fn()
        # One broken case must not lose the others; it is reported and fails the exit code.
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    with tempfile.TemporaryDirectory(prefix="stepsim-bench-") as workdir:
        n = sizes.one_workflow_steps
        for m in (
            attempt("(a) engine, one long workflow", lambda: engine_cases.one_workflow(
                workdir, n, repeats, case="a", label=f"1 workflow x {n} steps")),
            attempt("(a') engine, one long workflow, async callbacks", lambda: engine_cases.one_workflow(
                workdir, n, repeats, case="a-async", label=f"1 workflow x {n} async-callback steps",
                async_steps=True)),
            attempt("(b) engine, sequential", lambda: engine_cases.sequential(workdir, sizes, repeats)),
            attempt("(c) engine, concurrent runners", lambda: engine_cases.concurrent(workdir, sizes, repeats)),
            attempt("(d) raw SQLite", lambda: raw_commits(workdir, sizes.raw_commits, repeats)),
        ):
            if m is not None:
                measurements.append(m)
        dbos_version: str | None = None
        if include_dbos:
            app, dbos_version, dbos_note = load_dbos()
            if app is not None:
                found = attempt("(e) DBOS", lambda: dbos_cases(app, workdir, sizes, repeats))
                measurements.extend(found or [])
        else:
            dbos_note = "DBOS not requested in this run (include_dbos=False)"
        for steps in sizes.scaling:
            m = attempt(f"(f) engine, {steps} steps", functools.partial(
                engine_cases.one_workflow, workdir, steps, repeats, case=f"f{steps}",
                label=f"scaling: 1 workflow x {steps} steps"))
            if m is not None:
                measurements.append(m)
        latency = attempt("(g) latency", lambda: engine_cases.latency(workdir, sizes, repeats))
        measurements.extend(attempt("(i) worker processes, SQLite", lambda: pg_cases.process_scaling(
            engine_cases.files_in(workdir), "sqlite", sizes, repeats)) or [])
        latency_pg = None
        postgres_note = "PostgreSQL not measured in this run (no --postgres URL, or the server did not answer)"
        if postgres is not None:
            postgres_note = "PostgreSQL: " + pg_cases.server_settings(postgres)
            measurements.extend(attempt("engine on PostgreSQL", lambda: pg_cases.engine_rows(
                postgres, workdir, sizes, repeats)) or [])
            if include_dbos and dbos_version is not None:
                app, _, _ = load_dbos()
                measurements.extend(attempt("DBOS on PostgreSQL", lambda: pg_cases.dbos_rows(
                    app, postgres, sizes, repeats)) or [])
            latency_pg = attempt("(g) latency on PostgreSQL", lambda: pg_cases.engine_latency(
                postgres, workdir, sizes, repeats))
            schemas = pg_cases.Schemas(postgres)
            try:
                measurements.extend(attempt("(i) worker processes, PostgreSQL", lambda: pg_cases.process_scaling(
                    schemas, "postgres", sizes, repeats)) or [])
            finally:
                schemas.drop_all()
        sim_note = "not measured in this run (include_sim=False)"
        if include_sim:
            say("(h) simulator")
            sim_measurement, sim_note = simulator(sizes, repeats)
            measurements.append(sim_measurement)
        if profile:
            say("profile (a)")
            profile_lines, profile_note = pyinstrument_profile(workdir, n)
            statements = attempt("SQL statement breakdown", lambda: statement_breakdown(workdir, n)) or ()
    return BenchResults(
        repeats=repeats, sizes=sizes, measurements=tuple(measurements), latency=latency,
        dbos_version=dbos_version, dbos_note=dbos_note, sim_note=sim_note, environment=_environment(),
        profile=profile_lines, profile_note=profile_note, statements=statements, problems=tuple(problems),
        latency_pg=latency_pg, postgres_note=postgres_note,
    )


def write_report(results: BenchResults, out: str) -> str:
    """Write the Markdown report to `out` (directories created); returns the path."""
    directory = os.path.dirname(out)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(markdown(results))
    return out


def bench_command_main(
    repeats: int, quick: bool, out: str, *, include_dbos: bool = True, profile: bool = True,
    console: Console | None = None, sizes: Sizes | None = None, postgres: str | None = None,
) -> int:
    """What `stepsim bench` runs: measure, print the tables, write `out`. Returns 0, or 1 on a problem.

    A problem is work that did not complete (a correctness failure); a missed performance target is
    reported in the ratios table but does not change the exit code.
    """
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped to a file or CI log: do not wrap the table at 80 columns
            console = Console(width=160)
    if sizes is None:
        sizes = Sizes.quick() if quick else Sizes()
    with console.status("benchmarking...") as status:
        results = run_benchmarks(repeats=repeats, sizes=sizes, include_dbos=include_dbos, profile=profile,
                                 progress=lambda message: status.update(f"benchmarking {message}..."),
                                 postgres=postgres)
    print_results(results, console)
    path = write_report(results, out)
    console.print(f"wrote {path}")
    return 1 if results.problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench [--repeats N] [--quick] [--out PATH] [--no-dbos] [--no-profile]`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per case (median taken); default 3")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"Markdown report path; default {DEFAULT_OUT}")
    parser.add_argument("--no-dbos", action="store_true", help="skip DBOS even if it is installed")
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profile of (a)")
    parser.add_argument("--postgres", default=None, help="a server URL: add the PostgreSQL rows")
    args = parser.parse_args(argv)
    return bench_command_main(args.repeats, args.quick, args.out, include_dbos=not args.no_dbos,
                              profile=not args.no_profile, postgres=args.postgres)


if __name__ == "__main__":  # pragma: no cover - exercised through python -m bench
    sys.exit(main())
