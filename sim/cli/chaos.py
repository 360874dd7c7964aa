"""`stepsim chaos`: real worker processes, real SIGKILLs, then a history check (sim/chaos)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

import click
from rich.console import Console

console = Console()


@click.command()
@click.option("--db", "database", default="reports/chaos.db", show_default=True,
              help="a postgresql:// URL (a scratch schema is made in it) or a SQLite file to create")
@click.option("--workers", default=4, show_default=True, help="worker processes")
@click.option("--concurrency", default=2, show_default=True, help="runner loops per worker process")
@click.option("--workflows", default=1000, show_default=True, help="workflows in all (a fifth run calm)")
@click.option("--kills", default=50, show_default=True, help="SIGKILLs of workers and the client, at least")
@click.option("--lease", default=3.0, show_default=True, help="lease in seconds")
@click.option("--max-seconds", default=900.0, show_default=True, help="hard bound on the whole run")
@click.option("--heal-seconds", default=180.0, show_default=True, help="bound on healing after the faults stop")
@click.option("--seed", default=0, show_default=True, help="which faults hit whom (timings stay real)")
@click.option("--out", default=None, help="report path (default: reports/chaos-<backend>.md)")
@click.option("--keep", is_flag=True, help="keep the scratch schema or file for inspection")
@click.option("--mutant", default=None, help="workers serve this zoo mutant (the check must then fail)")
def chaos(database: str, workers: int, concurrency: int, workflows: int, kills: int, lease: float,
          max_seconds: float, heal_seconds: float, seed: int, out: str | None, keep: bool,
          mutant: str | None) -> None:
    """Real processes on one database under SIGKILL, SIGSTOP and killed connections; checks the history
    (no step committed twice, duplicates explained, no event lost, reordered or late, none stuck) and
    writes a Markdown report. Exits 1 on any violation."""
    from sim.chaos.controller import ChaosConfig, run_chaos
    from sim.world.databases import is_postgres

    config = ChaosConfig(database=database, workers=workers, concurrency=concurrency, workflows=workflows,
                         kills=kills, lease=lease, max_seconds=max_seconds, heal_seconds=heal_seconds,
                         seed=seed, keep=keep, mutant=mutant)
    console.print(f"chaos on {'PostgreSQL' if is_postgres(database) else 'SQLite'}: {workers} workers, "
                  f"{workflows} workflows, at least {kills} kills, at most {max_seconds:.0f} s")
    report = run_chaos(config)
    path = Path(out or f"reports/chaos-{report.backend.lower()}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.markdown())
    faults = path.with_suffix(".faults.jsonl")
    faults.write_text("".join(json.dumps(attrs.asdict(f)) + "\n" for f in report.fault_log))
    console.print(report.markdown())
    console.print(f"report: {path} (fault log: {faults})")
    if not report.ok:
        raise SystemExit(1)
