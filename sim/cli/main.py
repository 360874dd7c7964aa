"""The `stepsim` command line: drives the engine through its public API and the harness."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import click
from rich.console import Console

from engine import Engine

console = Console()


@click.group()
def main() -> None:
    """stepsim: a durable workflow engine with a deterministic simulation harness."""


async def _demo(database: str, poll: float) -> dict[str, Any]:
    from sim.world.workflows import approval

    engine = Engine(database, [approval], lease="30 s")
    seen: list[str] = []

    async def show(iid: str) -> str:
        info = await engine.status("approval-workflow", iid)
        state = f"{info.status.value}:{info.current_step}"
        if not seen or seen[-1] != state:
            seen.append(state)
            console.print(f"  [bold]{iid}[/bold] -> {info.status.value}"
                          + (f"  (step {info.current_step})" if info.current_step else ""))
        return info.status.value

    worker = asyncio.ensure_future(engine.run_worker(poll_interval=poll))
    try:
        iid = engine.runtime.new_id()
        await engine.create("approval-workflow", {"request_id": "r1", "amount": 125}, id=iid)
        await show(iid)
        while await show(iid) != "waiting":
            await asyncio.sleep(poll / 2)
        console.print("  sending approval event")
        await engine.send_event("approval-workflow", iid, type="approval", payload={"approved": True})
        while (await engine.history("approval-workflow", iid)).steps[-1].key != "wait_for_event:fulfilment":
            await show(iid)
            await asyncio.sleep(poll / 2)
        await show(iid)
        console.print("  sending fulfillment event")
        await engine.send_event("approval-workflow", iid, type="fulfillment", payload={"confirmation_id": "c1"})
        while await show(iid) not in ("complete", "errored", "terminated"):
            await asyncio.sleep(poll / 2)
        info = await engine.status("approval-workflow", iid)
        return {"status": info.status.value, "output": info.output, "statuses": seen}
    finally:
        await engine.stop()
        await worker
        await engine.close()


@main.command()
@click.option("--database", default=None, help="SQLite file (default: a temporary file)")
@click.option("--poll", default=0.1, show_default=True, help="worker poll interval in seconds")
def demo(database: str | None, poll: float) -> None:
    """Run the approval example end to end on SQLite, printing each status change."""
    with tempfile.TemporaryDirectory() as tmp:
        path = database or os.path.join(tmp, "demo.db")
        console.print(f"approval-workflow on {path}")
        result = asyncio.run(_demo(path, poll))
    console.print(f"result: {result['output']}")
    if result["status"] != "complete":
        raise SystemExit(1)


@main.command()
@click.option("--seeds", default=200, show_default=True, help="how many seeds to run")
@click.option("--start", default=0, show_default=True, help="first seed")
@click.option("--profile", default="default", show_default=True, help="default, swarm, calm or s1")
@click.option("--runners", type=int, default=None, help="simulated runners (overrides the profile)")
@click.option("--swarm", is_flag=True, help="random subset of fault kinds and rates per seed")
@click.option("--jobs", type=int, default=None, help="worker processes (default: one per core)")
@click.option("--self-check", "self_check_n", default=0, help="rerun this many seeds to verify determinism")
@click.option("--reports", default="reports", show_default=True, help="where failure artifacts go")
@click.option("--scheduler", type=click.Choice(["uniform", "pct"]), default="uniform", show_default=True)
@click.option("--depth", default=3, show_default=True, help="PCT bug depth d (d-1 priority change points)")
@click.option("--db", default=None, help="postgresql://... runs every seed on PostgreSQL (default: SQLite)")
def fuzz(seeds: int, start: int, profile: str, runners: int | None, swarm: bool, jobs: int | None,
         self_check_n: int, reports: str, scheduler: str, depth: int, db: str | None) -> None:
    """Run a fuzzing campaign of simulated seeds against the real engine."""
    from pathlib import Path

    from rich.progress import Progress

    from sim.cli.options import database_option
    from sim.search.campaign import campaign, default_jobs, repro_line, resolve_profile, self_check

    prof = resolve_profile(profile, runners=runners, swarm=swarm, database=database_option(db))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"fuzz {prof.name}", total=seeds)
        pct = depth if scheduler == "pct" else None
        summary = campaign(range(start, start + seeds), prof, jobs=jobs or default_jobs(),
                           reports=Path(reports), progress=lambda _: bar.advance(task), pct_depth=pct)
    console.print(f"seeds run: {summary.seeds}   failures: {len(summary.failures)}   "
                  f"properties checked: {summary.checks}")
    console.print("faults fired: " + (", ".join(f"{k}={v}" for k, v in sorted(summary.faults.items())) or "none"))
    for failure in summary.failures[:10]:
        console.print(f"[red]FAIL seed {failure.seed}[/red]\n{failure.violation}")
        console.print(f"  reproduce: {repro_line(failure.seed, prof, pct)}")
        console.print(f"  artifacts: {reports}/failures/{prof.name}-seed-{failure.seed}/")
    if self_check_n:
        bad = self_check(range(start, start + self_check_n), prof)
        console.print(f"determinism self-check on {self_check_n} seeds: " + ("ok" if not bad else f"DIFFERS {bad}"))
        if bad:
            raise SystemExit(2)
    if summary.failures:
        raise SystemExit(1)


@main.command()
@click.option("--seed", type=int, default=None)
@click.option("--profile", default="default", show_default=True)
@click.option("--runners", type=int, default=None)
@click.option("--swarm", is_flag=True)
@click.option("--view", type=click.Choice(["trace", "runners", "none"]), default="trace", show_default=True)
@click.option("--moves/--no-moves", default=False, help="include scheduler moves in the printed trace")
@click.option("--scheduler", type=click.Choice(["uniform", "pct"]), default="uniform", show_default=True)
@click.option("--depth", default=3, show_default=True)
@click.option("--tape", type=click.Path(exists=True, dir_okay=False), default=None,
              help="replay a choice tape written by `stepsim explore` instead of a seed")
@click.option("--db", default=None, help="postgresql://... replays on PostgreSQL (default: SQLite)")
def replay(seed: int | None, profile: str, runners: int | None, swarm: bool, view: str, moves: bool,
           scheduler: str, depth: int, tape: str | None, db: str | None) -> None:
    """Re-run one seed (or an explorer tape); print its trace and exit non-zero if a property fails again."""
    from sim.cli.options import database_option
    from sim.search.campaign import repro_line, resolve_profile, run_one

    pct = depth if scheduler == "pct" else None
    if tape is not None:
        from sim.search.explore import replay_tape

        outcome, result = replay_tape(tape)
        prof = resolve_profile("default")
    else:
        if seed is None:
            raise click.UsageError("give --seed N or --tape FILE")
        prof = resolve_profile(profile, runners=runners, swarm=swarm, database=database_option(db))
        outcome, result = run_one(seed, prof, pct_depth=pct)
    records = [r for r in result.trace if moves or r.action != "move"]
    if view == "trace":
        for r in records:
            click.echo(f"{r.t - records[0].t if records else 0:>12.3f}  {r.runner:<8} {r.action:<14} "
                       f"{_fmt(r.detail)}")
    elif view == "runners":
        lanes = sorted({r.runner for r in records})
        click.echo(" " * 12 + "".join(f"{lane:<34}" for lane in lanes))
        for r in records:
            cells = [(f"{r.action} {_fmt(r.detail)}"[:32] if lane == r.runner else "") for lane in lanes]
            click.echo(f"{r.t - records[0].t:>10.3f}  " + "".join(f"{c:<34}" for c in cells))
    console.print(f"trace digest {outcome.digest}  ({len(result.trace)} records)")
    if result.violations:
        for v in result.violations:
            console.print(f"[red]{v.render()}[/red]")
        if tape is None and seed is not None:
            console.print(f"reproduce: {repro_line(seed, prof, pct)}")
        raise SystemExit(1)
    console.print("[green]all properties hold[/green]")


@main.command()
@click.option("--repeats", default=3, show_default=True, help="repetitions per case (the median is reported)")
@click.option("--quick", is_flag=True, help="small sizes, for a smoke run")
@click.option("--out", default="reports/bench.md", show_default=True, help="where the Markdown report goes")
@click.option("--postgres", default=None,
              help="server for the PostgreSQL rows (default: 127.0.0.1:5432/test, if it answers)")
@click.option("--no-postgres", is_flag=True, help="SQLite rows only")
def bench(repeats: int, quick: bool, out: str, postgres: str | None, no_postgres: bool) -> None:
    """Benchmarks: engine vs DBOS (when installed) and raw SQLite, on SQLite and PostgreSQL; scaling with
    steps and with worker processes; latency; simulator."""
    from bench import bench_command_main
    from sim.world.databases import DEFAULT_POSTGRES, postgres_reachable

    url = None if no_postgres else (postgres or DEFAULT_POSTGRES)
    if url is not None and postgres_reachable(url) is not None:
        if postgres:
            raise click.BadParameter(f"PostgreSQL does not answer: {postgres_reachable(url)}",
                                     param_hint="--postgres")
        url = None
    raise SystemExit(bench_command_main(repeats, quick, out, postgres=url))


@main.command()
@click.option("--config", "config_name", default="steps3-faults", show_default=True,
              help="steps3, steps3-faults or race-pause")
@click.option("--preemptions", type=int, default=None, help="preemption bound (overrides the config)")
@click.option("--crashes", type=int, default=None, help="crash bound (overrides the config)")
@click.option("--max-executions", default=1_000_000, show_default=True)
@click.option("--no-prune", is_flag=True, help="disable state-hash pruning (for comparison)")
@click.option("--tape-out", default="reports/explore-violation.tape", show_default=True,
              help="where the first violating path is written")
def explore(config_name: str, preemptions: int | None, crashes: int | None, max_executions: int,
            no_prune: bool, tape_out: str) -> None:
    """Exhaustively explore every interleaving (and bounded faults) of a small configuration."""
    from pathlib import Path

    import attrs as _attrs

    from sim.search.explore import CONFIGS
    from sim.search.explore import explore as run_explore
    from sim.search.explore import write_tape

    config = CONFIGS[config_name]
    if preemptions is not None:
        config = _attrs.evolve(config, preemption_bound=preemptions)
    if crashes is not None:
        config = _attrs.evolve(config, max_crashes=crashes)
    with console.status(f"exploring {config.name}..."):
        stats = run_explore(config, max_executions=max_executions, prune=not no_prune)
    console.print(stats.render())
    if stats.violating_tape is not None:
        write_tape(Path(tape_out), config, stats.violating_tape)
        console.print(f"violating path written to {tape_out}; replay: stepsim replay --tape {tape_out}")
        raise SystemExit(1)


def _fmt(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(detail.items()))


from sim.cli.check import check  # noqa: E402
from sim.cli.scenarios import run  # noqa: E402

main.add_command(run)
main.add_command(check)
from sim.cli.quality import quality  # noqa: E402

main.add_command(quality)

from sim.cli.zoo import zoo  # noqa: E402

main.add_command(zoo)

from sim.cli.coverage import coverage_command  # noqa: E402

main.add_command(coverage_command, name="coverage")

from sim.cli.mutate import mutate  # noqa: E402

main.add_command(mutate)

from sim.cli.chaos import chaos  # noqa: E402

main.add_command(chaos)

if __name__ == "__main__":  # pragma: no cover - `python -m sim.cli.main`
    main()
