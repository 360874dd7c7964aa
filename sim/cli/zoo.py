"""`stepsim zoo`: run every mutant of the bug zoo under every search mode and write reports/zoo.md."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

console = Console()


def _modes(text: str) -> list[str]:
    from sim.zoo.mutants import MODES

    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise click.BadParameter(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
    return modes


@click.command()
@click.option("--budget", default=2000, show_default=True, help="seeds (and Hypothesis examples) per mode; "
              "each mode stops at its first detection")
@click.option("--mutant", "only", multiple=True, help="run only these mutants (repeatable)")
@click.option("--modes", "modes_text", default="random,swarm,pct,explore,machine", show_default=True,
              help="comma-separated subset of random, swarm, pct, explore, machine")
@click.option("--explore-cap", default=2000, show_default=True, help="explorer executions per mutant")
@click.option("--machine-budget", type=int, default=None, help="Hypothesis examples (default: --budget)")
@click.option("--ratio-seeds", default=300, show_default=True,
              help="seeds for the PCT-vs-uniform detection rates on lease-race mutants (0: skip)")
@click.option("--probe-seeds", default=200, show_default=True,
              help="seeds per profile (default, swarm) for the sometimes probes (0: skip)")
@click.option("--no-shrink", is_flag=True, help="report unshrunk counterexample lengths (faster)")
@click.option("--jobs", type=int, default=None, help="worker processes (default: one per core)")
@click.option("--out", default=None, help="Markdown report (default: reports/zoo.md for a full run, "
              "none when --mutant is given)")
@click.option("--replay", "replay_seed", type=int, default=None,
              help="with one --mutant and one --modes seeds mode: re-run this seed and print its trace")
@click.option("--tape", type=click.Path(exists=True, dir_okay=False), default=None,
              help="with one --mutant: replay an explorer tape (reports/zoo/NAME.tape) against that mutant")
def zoo(budget: int, only: tuple[str, ...], modes_text: str, explore_cap: int, machine_budget: int | None,
        ratio_seeds: int, probe_seeds: int, no_shrink: bool, jobs: int | None, out: str | None,
        replay_seed: int | None, tape: str | None) -> None:
    """The bug zoo: realistic engine mutants, each of which some search mode must find."""
    from sim.search.campaign import default_jobs
    from sim.zoo.cells import Budget, best_cell, pct_ratios, render_report, run_zoo
    from sim.zoo.mutants import MUTANTS

    modes = _modes(modes_text)
    unknown = set(only) - set(MUTANTS)
    if unknown:
        raise click.BadParameter(f"unknown mutant(s) {sorted(unknown)}; known: {', '.join(MUTANTS)}")
    if replay_seed is not None or tape is not None:
        _replay(only, modes, replay_seed, tape)
        return
    names = [n for n in MUTANTS if not only or n in only]
    plan = Budget(seeds=budget, explore_cap=explore_cap, machine_examples=machine_budget or budget,
                  shrink=not no_shrink)
    workers = jobs or default_jobs()
    started = time.perf_counter()

    def show(cell: object) -> None:
        from sim.zoo.cells import Cell

        assert isinstance(cell, Cell)
        if cell.detected:
            console.print(f"  {cell.mutant:<24} {cell.mode:<8} [green]found[/green] after {cell.tries} "
                          f"({cell.seconds:.1f} s, length {cell.length})  {cell.prop}")
        else:
            console.print(f"  {cell.mutant:<24} {cell.mode:<8} {cell.status} {cell.note}")

    console.print(f"bug zoo: {len(names)} mutants x {len(modes)} modes on {workers} worker(s)")
    cells = run_zoo(names, modes, plan, jobs=workers, reports=Path("reports"), progress=show)
    ratios = []
    if "random" in modes and "pct" in modes and any(MUTANTS[n].lease_race for n in names):
        ratios = [r for r in pct_ratios(cells, ratio_seeds, jobs=workers) if r.mutant in names]
        console.print("PCT vs uniform on lease races (uniform seeds-to-detect / PCT seeds-to-detect; "
                      f"detection rates over {ratio_seeds} seeds):")
        for r in ratios:
            first = f"{r.first_ratio:.2f}" if r.first_ratio is not None else "-"
            console.print(f"  {r.mutant:<24} first {r.uniform_first or '-'} / {r.pct_first or '-'} = {first}   "
                          f"rate uniform {r.uniform_hits}/{r.seeds}, pct {r.pct_hits}/{r.seeds}")
    probes = None
    if probe_seeds > 0 and not only:
        from sim.world.probes import probe_campaign

        probes = probe_campaign(probe_seeds)
        console.print(f"sometimes probes over {probes.seeds} seeds: "
                      + ", ".join(f"{p} {n}" for p, n in probes.counts.items()))
    undetected = [n for n in names if best_cell([c for c in cells if c.mutant == n]) is None]
    target = out if out is not None else (None if only else "reports/zoo.md")
    if target:
        text = render_report(cells, modes, plan, ratios=ratios, probes=probes, seconds=time.perf_counter() - started)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)
        console.print(f"report: {target}")
    if undetected:
        console.print(f"[red]undetected by every mode: {', '.join(undetected)}[/red]")
        raise SystemExit(1)
    if probes is not None and probes.missed:
        console.print(f"[red]probes never hit: {', '.join(probes.missed)}[/red]")
        raise SystemExit(1)


def _replay(only: tuple[str, ...], modes: list[str], seed: int | None, tape: str | None) -> None:
    from sim.world.probes import probe_stats
    from sim.world.simulation import RunResult
    from sim.zoo.cells import run_mutant_seed
    from sim.zoo.mutants import apply

    if len(only) != 1:
        raise click.UsageError("--replay and --tape need exactly one --mutant")
    result: RunResult
    if tape is not None:
        from sim.search.explore import replay_tape

        with apply(only[0]):
            result = replay_tape(tape)[1]
    else:
        assert seed is not None
        if len(modes) != 1 or modes[0] not in ("random", "swarm", "pct"):
            raise click.UsageError("--replay needs one of --modes random|swarm|pct")
        result = run_mutant_seed(only[0], modes[0], seed)[0]
    if not result.trace.records:
        raise click.UsageError("the replay recorded no trace")
    for r in result.trace:
        if r.action != "move":
            click.echo(f"{r.t - result.trace.records[0].t:>12.3f}  {r.runner:<8} {r.action:<16} "
                       + " ".join(f"{k}={v}" for k, v in sorted(r.detail.items())))
    console.print(probe_stats(result))
    for v in result.violations:
        console.print(f"[red]{v.render()}[/red]")
    if result.violations:
        raise SystemExit(1)
