"""`stepsim run` (scenario files under seeds) and the scenario helpers `stepsim check` shares."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sim.scenario.dsl import ScenarioResult
from sim.scenario.errors import ScenarioError
from sim.scenario.files import Job, discover, jobs_for, load, run_jobs

console = Console()

__all__ = ["print_summary", "progress", "run", "run_scenario_files", "save_failures", "scenario_paths",
           "summary_rows"]


def progress() -> Progress:
    """A transient progress bar with a status column, shared by `stepsim run` and `stepsim check`."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), console=console, transient=True)


def run_scenario_files(paths: list[Path], *, seeds: int, workers: int, only_seed: int | None = None,
                       match: str | None = None, database: str | None = None) -> list[ScenarioResult]:
    """Run the scenario files with a progress bar; returns every result (failures included)."""
    jobs = jobs_for(paths, seeds, only_seed=only_seed, match=match, database=database)
    failed = 0
    with progress() as bar:
        task = bar.add_task("scenarios", total=len(jobs), status="")

        def tick(job: Job, result: ScenarioResult) -> None:
            nonlocal failed
            failed += not result.ok
            seed = "" if job.seed is None else f"[seed={job.seed}]"
            bar.update(task, advance=1, status=f"{'[red]' + str(failed) + ' failed[/red]  ' if failed else ''}"
                                             f"{result.scenario}{seed}")

        return run_jobs(jobs, workers=workers, progress=tick)


def summary_rows(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """One row per scenario: runs, faults injected, seconds and failed runs (table and Markdown)."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.scenario, {"scenario": r.scenario, "runs": 0, "failed": 0, "faults": 0,
                                           "seconds": 0.0, "first_failure": None})
        row["runs"] += 1
        row["seconds"] += r.seconds
        row["faults"] += len(r.injected)
        if not r.ok:
            row["failed"] += 1
            row["first_failure"] = row["first_failure"] or r
    return list(rows.values())


def print_summary(results: list[ScenarioResult], elapsed: float) -> None:
    """Print the scenario table and the totals line."""
    table = Table(title=None, show_edge=False, pad_edge=False)
    for col, justify in (("scenario", "left"), ("runs", "right"), ("faults injected", "right"),
                         ("time", "right"), ("result", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in summary_rows(results):
        verdict = "[green]ok[/green]" if not row["failed"] else f"[red]{row['failed']} failed[/red]"
        table.add_row(row["scenario"], str(row["runs"]), str(row["faults"]), f"{row['seconds']:.2f}s", verdict)
    console.print(table)
    failures = [r for r in results if not r.ok]
    for r in failures[:3]:
        console.print(f"\n[red]FAIL[/red] {r.scenario}" + ("" if r.seed is None else f" [seed={r.seed}]"))
        click.echo(r.report)
    if len(failures) > 3:
        console.print(f"... and {len(failures) - 3} more failing runs (reports under failure artifacts)")
    scenarios = len({r.scenario for r in results})
    console.print(f"{scenarios} scenarios, {len(results)} runs, {len(failures)} failed, "
                  f"{sum(len(r.injected) for r in results)} faults injected, in {elapsed:.1f}s")


def save_failures(results: list[ScenarioResult], reports: Path) -> list[Path]:
    """Write each failed run's report and trace under REPORTS/failures/; returns the folders."""
    saved = []
    for r in results:
        if r.ok:
            continue
        run_name = "deterministic" if r.seed is None else f"seed-{r.seed}"
        folder = reports / "failures" / f"scenario-{r.scenario}-{run_name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.txt").write_text((r.report or "") + "\n")
        (folder / "trace.jsonl").write_text(r.trace.to_jsonl())
        saved.append(folder)
    return saved


def scenario_paths(paths: tuple[str, ...]) -> list[Path]:
    """The scenario files under `paths`, each loaded once so import errors show before anything runs."""
    try:
        found = discover(paths or ("scenarios",))
        for path in found:
            load(path)  # import errors and missing docstrings are reported before anything runs
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from None
    if not found:
        raise click.ClickException(f"no scenario files in {', '.join(paths or ('scenarios',))}")
    return found


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--seeds", default=3, show_default=True,
              help="seeds per scenario, on top of the deterministic run (scenarios that tolerate faults)")
@click.option("--seed", "only_seed", type=int, default=None, help="run only this seed (reproduce a failure)")
@click.option("-k", "match", default=None, help="only scenarios whose name contains this text")
@click.option("--jobs", type=int, default=1, show_default=True, help="worker processes")
@click.option("--reports", default="reports", show_default=True, help="where failure artifacts go")
@click.option("--db", default=None, help="postgresql://... runs every scenario on PostgreSQL (default: SQLite)")
def run(paths: tuple[str, ...], seeds: int, only_seed: int | None, match: str | None, jobs: int,
        reports: str, db: str | None) -> None:
    """Run scenario files (default: scenarios/) deterministically and under SEEDS seeds each."""
    from sim.cli.options import database_option

    found = scenario_paths(paths)
    started = time.perf_counter()
    results = run_scenario_files(found, seeds=seeds, workers=jobs, only_seed=only_seed, match=match,
                                 database=database_option(db))
    print_summary(results, time.perf_counter() - started)
    saved = save_failures(results, Path(reports))
    if saved:
        console.print(f"failure artifacts: {', '.join(str(p) for p in saved[:5])}")
        raise SystemExit(1)
