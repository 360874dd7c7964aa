"""`stepsim mutate`: mutation testing of engine/ judged by the searches alone (sim/zoo/mutate.py)."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command()
@click.option("--module", "modules", multiple=True, help="engine modules to mutate (default: the core ones)")
@click.option("--seeds", default=60, show_default=True, help="seeds per fuzz profile for each mutant")
@click.option("--limit", type=int, default=None, help="judge only the first N mutants")
@click.option("--jobs", type=int, default=None, help="worker processes (default: one per core)")
@click.option("--out", default="reports/mutation.md", show_default=True, help="where the report goes")
@click.option("--min-score", type=float, default=None, help="exit 1 below this score (%)")
def mutate(
    modules: tuple[str, ...],
    seeds: int,
    limit: int | None,
    jobs: int | None,
    out: str,
    min_score: float | None,
) -> None:
    """Mutate engine/ systematically and run only the searches against each mutant; write the score."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sim.core.parallel import run_all
    from sim.search.campaign import default_jobs
    from sim.zoo.mutate import MODULES, Verdict, judge, mutations, render

    console = Console()
    found = mutations(tuple(modules) or MODULES)[:limit]
    console.print(
        f"{len(found)} mutants, {seeds} seeds per profile each, on {jobs or default_jobs()} worker(s)"
    )
    started = time.perf_counter()
    verdicts: list[Verdict] = []
    with Progress(
        TextColumn("mutants"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("mutants", total=len(found), status="")
        for verdict in run_all(judge, [(m, seeds) for m in found], jobs=jobs or default_jobs(), chunksize=1):
            verdicts.append(verdict)
            killed = sum(v.status == "killed" for v in verdicts)
            bar.update(task, advance=1, status=f"{killed} killed")
    text = render(verdicts, seeds, time.perf_counter() - started)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    killed = sum(v.status == "killed" for v in verdicts)
    judged = killed + sum(v.status == "survived" for v in verdicts)
    score = 100.0 * killed / max(1, judged)
    console.print(f"score {score:.1f}% ({killed}/{judged} mutants that changed behaviour); report: {out}")
    if min_score is not None and score < min_score:
        raise SystemExit(1)


__all__ = ["mutate"]
