"""`stepsim quality`: the state machine's quality tier (deliberately broken engines) and its benchmark."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

console = Console()

MAX_SHRUNK_RULES = 12


@click.command()
@click.option("--mutant", "only", multiple=True, help="run only these mutants (by slug); repeatable")
@click.option("--seed", default=0, show_default=True, help="Hypothesis seed of every hunt")
@click.option("--max-examples", default=5000, show_default=True, help="give up on a mutant after this many")
@click.option("--out", default="reports/machine_quality.md", show_default=True, help="the Markdown report")
@click.option("--bench", is_flag=True, help="instead: rule steps per second of the machine on the real engine")
def quality(only: tuple[str, ...], seed: int, max_examples: int, out: str, bench: bool) -> None:
    """The Hypothesis state machine must catch each broken engine and shrink it to at most 12 rules."""
    from sim.zoo.quality import MUTANTS, hunt, report

    if bench:
        _bench(seed)
        return
    unknown = set(only) - {m.slug for m in MUTANTS}
    if unknown:
        raise click.BadParameter(f"unknown mutant(s) {sorted(unknown)}; known: {[m.slug for m in MUTANTS]}")
    hunts = []
    for mutant in MUTANTS:
        if only and mutant.slug not in only:
            continue
        console.print(f"hunting [bold]{mutant.title}[/bold] ...")
        h = hunt(mutant, seed=seed, max_examples=max_examples)
        hunts.append(h)
        if h.detected:
            console.print(f"  caught after {h.examples} examples; shrunk to {h.rules} rules in "
                          f"{h.shrink_seconds or 0:.1f} s  ({h.error[:100]})")
        else:
            console.print(f"  [red]not caught in {max_examples} examples[/red]")
    report(hunts, Path(out))
    console.print(f"report: {out}")
    bad = [h.mutant.slug for h in hunts if not h.detected or (h.rules or 0) > MAX_SHRUNK_RULES]
    if bad:
        console.print(f"[red]quality tier failed for: {', '.join(bad)}[/red]")
        raise SystemExit(1)


def _bench(seed: int) -> None:
    from sim.zoo.quality import bench

    rate, stats, seconds = bench(seed=seed)
    console.print(f"rule steps per second (real engine, ci profile, best of 3): [bold]{rate:,.0f}[/bold]  "
                  f"({stats.rules} rule steps, {stats.examples} examples, {seconds:.2f} s)")
    console.print(f"  of which inside rules and checks (engine, harness, model, checkers): {stats.busy:.2f} s "
                  f"= {stats.rules / stats.busy:,.0f} rule steps/s; the rest is Hypothesis generating them")
