"""Quality tier of the state machine: deliberately broken engines it must find and shrink (issue 5).

Each mutant is one small edit to one engine function, applied by `applied(mutant)` — a context manager that
swaps the function on its module or class and restores it on exit, like pytest's monkeypatch. The store
calls `txn.<name>` at call time and runners call step methods on the class, so the patch reaches every
simulated runner. An edit names text that must occur exactly once, so an engine refactor fails loudly here
instead of silently testing the real engine.

`hunt(mutant)` runs the machine against it and reports examples-to-detect, the shrunk program's length in
rules, and how long shrinking took; `stepsim quality` writes the table to reports/machine_quality.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

import attrs

import engine._sqlite_txn as txn
import engine._step as step
from properties import strategies as s
from properties.machine import MachineStats, program_rules, run_machine, timed_run
from sim.zoo_mutants import rewritten


@attrs.frozen
class Mutant:
    """A broken engine: `edits` maps (owner, function name) to the source edits that break it."""

    slug: str
    title: str
    owner: Any
    name: str
    edits: tuple[tuple[str, str], ...]


@contextmanager
def applied(mutant: Mutant) -> Iterator[None]:
    """Swap the mutant in for the duration of the block (monkeypatch-style), then restore the original."""
    original = getattr(mutant.owner, mutant.name)
    setattr(mutant.owner, mutant.name, rewritten(mutant.owner, mutant.name, *mutant.edits))
    try:
        yield
    finally:
        setattr(mutant.owner, mutant.name, original)


MUTANTS = (
    Mutant("blind-claim", "claim without the optimistic check", txn, "claim_txn", (
        # A claim succeeds even if another runner claimed the task since it was found (property 3).
        ("AND version = ? AND ((status = 'pending' AND run_at <= ?) ", "AND ? IS NOT NULL AND ((? IS NOT NULL) "),
        ("OR (status = 'processing' AND locked_until < ?))", "OR (? IS NOT NULL))"),
    )),
    Mutant("renew-any-owner", "lease renewal ignoring ownership", txn, "held_until_txn", (
        # The fence that renews a lease (heartbeats, step commits) no longer asks whose lease it is, so a
        # runner whose task was taken over renews and commits into the new claimant's lease (property 3).
        ("AND lock_owner = ? AND version = ? ", "AND ? IS NOT NULL AND ? IS NOT NULL "),
    )),
    Mutant("late-completion", "terminate overwritten by a late completion", txn, "finish_txn", (
        # The finishing runner skips its fence once the instance is terminated (terminate deleted its
        # task), so a run that was in flight overwrites `terminated` with `complete` (properties 4, 10).
        ("    fence_txn(conn, claim, now, lease_until)\n",
         ("    if conn.execute('SELECT status FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?',\n"
          "                    (claim.workflow, claim.instance_id)).fetchone()[0] != 'terminated':\n"
          "        fence_txn(conn, claim, now, lease_until)\n")),
    )),
    Mutant("event-twice", "an event consumed twice", txn, "wait_event_txn", (
        # The consumed event is never marked, so the next wait of the same type takes it again (property 5).
        ('"UPDATE workflow_event SET consumed_by_step_key = ?, consumed_run = ?, delivered_at = ? WHERE id = ?"',
         '"SELECT ?, ?, ?, ?"'),
    )),
    # The retry decision lives in the step method, not in a store transaction: the store only records it.
    Mutant("retries-past-limit", "retries past the limit", step.WorkflowStep, "do", (
        ("attempt >= policy.max_attempts", "attempt > policy.max_attempts"),
    )),
)


@attrs.frozen
class Hunt:
    """What the machine did against one mutant."""

    mutant: Mutant
    detected: bool
    examples: int | None  # examples run until the first failing one (inclusive)
    rules: int | None  # rule steps of the shrunk program
    shrink_seconds: float | None
    seconds: float
    program: str
    error: str


def hunt(mutant: Mutant, *, seed: int = 0, max_examples: int = 2000) -> Hunt:
    """Run the machine against `mutant` until it fails, and measure the shrink."""
    stats = MachineStats()
    start = perf_counter()
    failure: AssertionError | None = None
    with applied(mutant):
        try:
            run_machine(s.quality_settings(max_examples), seed=seed, profile=f"mutant-{mutant.slug}", stats=stats,
                        repro=f"stepsim quality --mutant {mutant.slug} --seed {seed} --max-examples {max_examples}")
        except AssertionError as exc:  # the machine's failure is the expected outcome here
            failure = exc
    end = perf_counter()
    if failure is None:
        return Hunt(mutant, False, None, None, None, end - start, "", "")
    # The invariant's name is printed after every rule; the report keeps rules, draws and the repro lines.
    program = "\n".join(line for n in getattr(failure, "__notes__", []) for line in str(n).splitlines()
                        if line.strip() != "state.properties_hold()")
    first = stats.first_failure_at
    return Hunt(mutant, True, stats.first_failure_example, program_rules(program),
                None if first is None else end - first, end - start, program,
                f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}")


def bench(*, seed: int = 0, examples: int = 300, repeats: int = 3) -> tuple[float, MachineStats, float]:
    """Rule steps per second of healthy runs against the real engine: (best rate, its stats, its seconds)."""
    config = s.profile_settings("ci")
    from hypothesis import settings

    best: tuple[float, MachineStats, float] | None = None
    for i in range(repeats):
        stats, seconds = timed_run(settings(config, max_examples=examples), seed + i)
        rate = stats.rules / seconds
        if best is None or rate > best[0]:
            best = (rate, stats, seconds)
    assert best is not None
    return best


def report(hunts: list[Hunt], path: Path) -> str:
    """The Markdown table (and shrunk programs) for reports/machine_quality.md; returns the text."""
    lines = [
        "# State machine quality tier",
        "",
        "Each row is a deliberately broken engine (`properties/quality.py`); the machine (`properties/machine.py`)",
        "must detect it and shrink the failure to at most 12 rules. Generated by `stepsim quality`.",
        "",
        "| mutant | detected | examples to detect | shrunk rules | shrink time (s) | total (s) |",
        "|---|---|---|---|---|---|",
    ]
    for h in hunts:
        lines.append(f"| {h.mutant.title} (`{h.mutant.slug}`) | {'yes' if h.detected else '**no**'} | "
                     f"{h.examples if h.examples is not None else '-'} | "
                     f"{h.rules if h.rules is not None else '-'} | "
                     f"{f'{h.shrink_seconds:.1f}' if h.shrink_seconds is not None else '-'} | {h.seconds:.1f} |")
    for h in hunts:
        if h.detected:
            lines += ["", f"## {h.mutant.title}", "", f"`{h.error}`", "", "```", h.program, "```"]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


__all__ = ["MUTANTS", "Hunt", "Mutant", "applied", "bench", "hunt", "report"]
