"""`stepsim check`, the main CI job: every scenario file, a fuzz campaign on every profile (uniform and PCT
scheduling), the explorer's quick configurations and a determinism self-check; writes REPORTS/summary.md.

Every leg uses fixed seeds, so the verdict is the same on every run: a bug the job can find, it finds each
time. Random exploration beyond it belongs to `stepsim fuzz --start N` and the nightly tier.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import click
from rich.progress import Progress, TaskID

from sim.cli.scenarios import (
    scenario_paths,
    print_summary,
    progress,
    save_failures,
    summary_rows,
    console,
    run_scenario_files,
)
from sim.scenario.dsl import ScenarioResult
from sim.search.campaign import SeedOutcome

EXPLORE_CONFIGS = ("steps3", "race-pause")  # the quick ones; steps3-faults takes minutes (`stepsim explore`)
PCT_DEPTH = 3


@attrs.define
class Leg:
    """One search of the job and what it found."""

    name: str
    runs: int = 0
    failures: list[str] = attrs.Factory(list)  # rendered violations with their replay line
    seconds: float = 0.0
    checks: int = 0
    artifacts: list[Path] = attrs.Factory(list)  # failure folders under REPORTS/failures/


def _fuzz_legs(profiles: list[str], seeds: int, workers: int, out: Path, database: str | None) -> list[Leg]:
    from sim.search.campaign import campaign, repro_line, resolve_profile

    legs = []
    plans = [(name, None) for name in profiles] + [("default", PCT_DEPTH)]
    for name, depth in plans:
        prof = resolve_profile(name, database=database)
        leg = Leg(f"fuzz {name}" + (f" (PCT d={depth})" if depth else ""))
        started = time.perf_counter()
        with progress() as bar:
            task = bar.add_task(leg.name, total=seeds, status="")

            def tick(outcome: SeedOutcome, task: TaskID = task, bar: Progress = bar) -> None:
                bar.update(task, advance=1, status="" if outcome.ok else f"seed {outcome.seed} FAILED")

            summary = campaign(range(seeds), prof, jobs=workers, reports=out, pct_depth=depth, progress=tick)
        leg.runs, leg.checks, leg.seconds = summary.seeds, summary.checks, time.perf_counter() - started
        leg.failures = [
            f"{f.violation}\n  reproduce: {repro_line(f.seed, prof, depth)}" for f in summary.failures
        ]
        leg.artifacts = [out / "failures" / f"{prof.name}-seed-{f.seed}" for f in summary.failures]
        console.print(
            f"{leg.name}: {leg.runs} seeds, {len(leg.failures)} failed, {leg.checks} checks, "
            f"{leg.seconds:.1f}s"
        )
        legs.append(leg)
    return legs


def _explore_legs() -> list[Leg]:
    from sim.search.explore import CONFIGS, explore

    legs = []
    for name in EXPLORE_CONFIGS:
        stats = explore(CONFIGS[name])
        leg = Leg(f"explore {name}", runs=stats.executions, seconds=stats.seconds)
        if stats.violation is not None:
            leg.failures.append(f"{stats.violation}\n  reproduce: stepsim explore --config {name}")
        console.print(
            f"{leg.name}: {stats.executions} executions, {stats.distinct_states} states, "
            f"{'VIOLATION' if stats.violation else 'ok'}, {stats.seconds:.1f}s"
        )
        legs.append(leg)
    return legs


def _markdown(
    results: list[ScenarioResult], legs: list[Leg], determinism: str, elapsed: float, saved: list[Path]
) -> str:
    failed = [r for r in results if not r.ok]
    ok = not failed and not any(leg.failures for leg in legs) and determinism == "ok"
    files, found = len({r.scenario for r in results}), sum(len(leg.failures) for leg in legs)
    lines = [
        "# stepsim check",
        "",
        f"**{'PASS' if ok else 'FAIL'}** in {elapsed:.1f}s: {files} scenario files "
        f"({len(results)} runs, {len(failed)} failed), {len(legs)} searches ({found} failures); "
        f"determinism self-check {determinism}.",
        "",
        "## Scenarios",
        "",
        "| scenario | runs | faults injected | time | result |",
        "|---|---:|---:|---:|---|",
    ]
    for row in summary_rows(results):
        verdict = "ok" if not row["failed"] else f"**{row['failed']} failed**"
        lines.append(
            f"| {row['scenario']} | {row['runs']} | {row['faults']} | {row['seconds']:.2f}s | {verdict} |"
        )
    for r in failed[:10]:
        head = (r.report or "").splitlines()[:4]
        lines += [
            "",
            f"### FAIL {r.scenario}" + ("" if r.seed is None else f" [seed={r.seed}]"),
            "",
            "```",
            *head,
            "```",
        ]
    lines += [
        "",
        "## Searches (fixed seeds; the reference model judges every one)",
        "",
        "| search | runs | properties checked | time | result |",
        "|---|---:|---:|---:|---|",
    ]
    for leg in legs:
        verdict = "ok" if not leg.failures else f"**{len(leg.failures)} failed**"
        lines.append(f"| {leg.name} | {leg.runs} | {leg.checks or '-'} | {leg.seconds:.1f}s | {verdict} |")
    for leg in legs:
        for failure in leg.failures[:3]:
            lines += ["", f"### FAIL {leg.name}", "", "```", failure, "```"]
    if saved:
        lines += ["", "## Failure artifacts", ""] + [f"- `{p}`" for p in saved]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--scenarios", "scenario_dir", default="scenarios", show_default=True, help="scenario folder")
@click.option("--seeds", default=10, show_default=True, help="seeds per scenario")
@click.option("--fuzz-seeds", default=150, show_default=True, help="seeds per fuzz profile")
@click.option("--profile", "profiles", multiple=True, help="fuzz only these profiles (default: all of them)")
@click.option("--jobs", type=int, default=None, help="worker processes (default: one per core)")
@click.option("--reports", default="reports", show_default=True, help="summary.md and failure artifacts")
@click.option("--db", default=None,
              help="postgresql://... runs the scenarios and fuzz legs on PostgreSQL (the explorer stays on SQLite)")
def check(
    scenario_dir: str, seeds: int, fuzz_seeds: int, profiles: tuple[str, ...], jobs: int | None, reports: str,
    db: str | None,
) -> None:
    """The main CI job: every scenario file, every fuzz profile (and PCT), the quick explorer configurations;
    writes REPORTS/summary.md and exits 1 on any failure."""
    from sim.cli.options import database_option
    from sim.search.campaign import default_jobs, resolve_profile, self_check
    from sim.world.workload import PROFILES

    database = database_option(db)
    if database:
        console.print("[bold]backend[/bold]: PostgreSQL for scenarios and fuzzing; the explorer runs on SQLite")
    workers = jobs or default_jobs()
    out = Path(reports)
    started = time.perf_counter()
    found = scenario_paths((scenario_dir,))
    console.print(f"[bold]scenarios[/bold]: {len(found)} files from {scenario_dir}/, {seeds} seeds each")
    results = run_scenario_files(found, seeds=seeds, workers=workers, database=database)
    print_summary(results, time.perf_counter() - started)
    names = list(profiles) or list(PROFILES)
    console.print(
        f"\n[bold]fuzz[/bold]: {fuzz_seeds} seeds of each of {', '.join(names)} (and PCT) on "
        f"{workers} worker(s)"
    )
    legs = _fuzz_legs(names, fuzz_seeds, workers, out, database) + _explore_legs()
    bad = self_check(range(3), resolve_profile("default", database=database))
    determinism = "ok" if not bad else f"DIFFERS for seeds {bad}"
    console.print(f"determinism self-check: {determinism}")
    for leg in legs:
        for failure in leg.failures[:3]:
            console.print(f"[red]FAIL {leg.name}[/red]")
            click.echo(failure)
    saved = save_failures(results, out) + [path for leg in legs for path in leg.artifacts]
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.md"
    summary.write_text(_markdown(results, legs, determinism, time.perf_counter() - started, saved))
    failed = any(not r.ok for r in results) or any(leg.failures for leg in legs) or bool(bad)
    console.print(f"\n{'[red]FAIL[/red]' if failed else '[green]PASS[/green]'}  summary: {summary}")
    if failed:
        raise SystemExit(1)


__all__ = ["check"]
