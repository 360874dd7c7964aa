"""The bug zoo: every mutant of sim/zoo/mutants.py under every search mode, and the table in reports/zoo.md.

Modes: seeded random (the mutant's setting, uniform scheduling), swarm (the same setting with a random
subset of fault kinds per seed), PCT (depth 3), the exhaustive explorer (only where the bug is within the
bounds of one of its configurations) and the Hypothesis state machine. Each mode runs until its first
detection or its budget. A detection counts only if the clean engine passes the same seed (or tape): a
mutant is caught by behaving differently, never by a setting the real engine fails too.

The length of a counterexample is, for seeds, the number of non-move trace records of the run after a
cheap shrink of its choice tape (shortest failing prefix, then fault coins turned off one at a time); for
the explorer, the length of its violating tape; for the machine, the rule steps of the shrunk program.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from sim.core.choices import FLIP, Choice, RecordingChoices, SeededChoices
from sim.core.parallel import run_all
from sim.world.simulation import RunResult
from sim.zoo.mutants import MODES, MUTANTS, Setting, ZooMutant, apply

PCT_DEPTH = 3
NOT_FOR_MACHINE = frozenset({"canary", "wall-clock-trace"})  # they live in the simulated World, not the engine


@attrs.frozen(kw_only=True)
class Cell:
    """One mutant under one mode."""

    mutant: str
    mode: str
    status: str  # detected | missed | n/a | error
    tries: int = 0  # seeds / executions / examples run, up to and including the detecting one
    seconds: float = 0.0  # wall time to detect (or to give up); shrinking not included
    length: int | None = None  # the (shrunk) counterexample's length, see the module docstring
    raw_length: int | None = None  # the same before shrinking (seeds only)
    prop: str | None = None  # the property that fired
    witness: str = ""  # seed, tape file or Hypothesis seed
    false_alarms: int = 0  # seeds skipped because the clean engine fails them as well
    note: str = ""

    @property
    def detected(self) -> bool:
        return self.status == "detected"


# --- seeds: random, swarm, PCT ----------------------------------------------------------------------------


def mode_setting(mutant: ZooMutant, mode: str) -> Setting:
    """The setting a seeds mode runs the mutant in."""
    return mutant.setting.swarm() if mode == "swarm" else mutant.setting


def _pct(mode: str) -> int | None:
    return PCT_DEPTH if mode == "pct" else None


def _prop(result: RunResult) -> str | None:
    return result.violations[0].prop if result.violations else None


def run_mutant_seed(name: str, mode: str, seed: int) -> tuple[RunResult, RunResult | None]:
    """One seed of mutant `name` in `mode`; for the determinism oracle also its rerun (else None)."""
    mutant = MUTANTS[name]
    setting = mode_setting(mutant, mode)
    with apply(name):
        first = setting.run(seed, pct_depth=_pct(mode))
        again = setting.run(seed, pct_depth=_pct(mode)) if mutant.oracle == "determinism" else None
    return first, again


def _hit(first: RunResult, again: RunResult | None) -> bool:
    if again is not None:
        return first.trace.digest() != again.trace.digest()
    return bool(first.violations)


def _clean_hit(mutant: ZooMutant, mode: str, seed: int) -> bool:
    setting = mode_setting(mutant, mode)
    first = setting.run(seed, pct_depth=_pct(mode))
    if mutant.oracle == "determinism":
        return first.trace.digest() != setting.run(seed, pct_depth=_pct(mode)).trace.digest()
    return bool(first.violations)


def moves_free(result: RunResult) -> int:
    """Trace records that are not bare scheduler moves: what happened, as a reader counts it."""
    return sum(1 for r in result.trace if r.action != "move")


class LenientTape:
    """Replays a tape where it still fits and gives the boring answer elsewhere, so a shrunk tape always runs.

    Boring means: the first option, no fault, and the next client operation at once (an "input" coin comes
    up True past the tape), so the workload still plays out promptly instead of idling to the action limit.
    """

    def __init__(self, tape: Sequence[Choice]) -> None:
        self.tape = list(tape)
        self.position = 0

    def _next(self, kind: str, n: int) -> int | None:
        if self.position >= len(self.tape):
            return None
        found = self.tape[self.position]
        self.position += 1
        if found.kind != kind or found.n != n:
            return None  # the run took another path here: the boring answer, and move on
        return found.value

    def choose(self, kind: str, n: int) -> int:
        if n <= 1:
            return 0
        value = self._next(kind, n)
        return 0 if value is None or value >= n else value

    def flip(self, kind: str, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        value = self._next(kind, FLIP)
        return kind == "input" if value is None else bool(value)


def shrink_seed(name: str, mode: str, seed: int, prop: str, *, max_tries: int = 60) -> tuple[int, int, int]:
    """Shrink a failing seed's choice tape; returns (records before, shortest failing run's records, choices kept).

    The shortest prefix that still fails with `prop` (binary search; past the prefix every decision is the
    boring one: no fault, no client op, the earliest waiter), then each remaining fault coin turned off if
    the failure survives. Cheap and crude next to Hypothesis, but it shows how short the story can be.
    """
    mutant = MUTANTS[name]
    setting = mode_setting(mutant, mode)
    with apply(name):
        recorder = RecordingChoices(SeededChoices(seed))
        original = setting.run(seed, pct_depth=_pct(mode), choices=recorder)
        tape = recorder.tape
        best = original

        def fails(candidate: Sequence[Choice]) -> RunResult | None:
            result = setting.run(seed, pct_depth=_pct(mode), choices=LenientTape(candidate))
            return result if _prop(result) == prop else None

        lo, hi = 0, len(tape)  # tape[:hi] fails (the whole tape reproduces the seed)
        tries = 0
        while lo < hi and tries < max_tries // 2:
            mid = (lo + hi) // 2
            tries += 1
            found = fails(tape[:mid])
            if found is not None:
                hi, best = mid, min(best, found, key=moves_free)
            else:
                lo = mid + 1
        kept = list(tape[:hi])
        for i in reversed(range(len(kept))):
            if tries >= max_tries:
                break
            c = kept[i]
            if c.kind != "fault" or c.n != FLIP or c.value != 1:
                continue
            tries += 1
            candidate = kept[:i] + [Choice(c.kind, c.n, 0)] + kept[i + 1:]
            found = fails(candidate)
            if found is not None:
                kept, best = candidate, min(best, found, key=moves_free)
    return moves_free(original), moves_free(best), sum(1 for c in kept if c.value)


def seeds_cell(name: str, mode: str, budget: int, *, shrink: bool = True) -> Cell:
    """Seeds 0, 1, ... of the mode until the first detection the clean engine does not share."""
    mutant = MUTANTS[name]
    started = time.perf_counter()
    false_alarms = 0
    for seed in range(budget):
        first, again = run_mutant_seed(name, mode, seed)
        if not _hit(first, again):
            continue
        if _clean_hit(mutant, mode, seed):
            false_alarms += 1
            continue
        seconds = time.perf_counter() - started
        prop = "determinism" if again is not None else _prop(first)
        raw = length = moves_free(first)
        note = ""
        if shrink and again is None and prop is not None:
            raw, length, decisions = shrink_seed(name, mode, seed, prop)
            note = f"{decisions} non-default choices after shrinking"
        return Cell(mutant=name, mode=mode, status="detected", tries=seed + 1, seconds=seconds, length=length,
                    raw_length=raw, prop=prop, witness=f"`stepsim zoo --mutant {name} --modes {mode} --replay {seed}`",
                    false_alarms=false_alarms, note=note)
    return Cell(mutant=name, mode=mode, status="missed", tries=budget, seconds=time.perf_counter() - started,
                false_alarms=false_alarms)


def detection_rate(name: str, mode: str, seeds: int) -> tuple[int, int]:
    """(seeds where the mutant fails and the clean engine passes, seeds run): for PCT-vs-uniform ratios."""
    mutant = MUTANTS[name]
    hits = 0
    for seed in range(seeds):
        first, again = run_mutant_seed(name, mode, seed)
        if _hit(first, again) and not _clean_hit(mutant, mode, seed):
            hits += 1
    return hits, seeds


# --- the explorer and the machine ------------------------------------------------------------------------


def explore_cell(name: str, cap: int, reports: Path | None) -> Cell:
    """The exhaustive explorer on the mutant's configuration, stopping at the first violation."""
    mutant = MUTANTS[name]
    if mutant.explore is None or mutant.oracle != "violation":
        return Cell(mutant=name, mode="explore", status="n/a", note="outside every explorer configuration")
    from sim.search.explore import CONFIGS, explore, replay_tape, write_tape

    config = CONFIGS[mutant.explore]
    started = time.perf_counter()
    with apply(name):
        stats = explore(config, max_executions=cap, stop_on_violation=True)
    seconds = time.perf_counter() - started
    if stats.violation is None or stats.violating_tape is None:
        why = "bound exhausted" if stats.exhausted else f"cap of {cap} executions"
        note = f"{mutant.explore}: {why}" + (f"; {mutant.explore_note}" if mutant.explore_note else "")
        return Cell(mutant=name, mode="explore", status="missed", tries=stats.executions, seconds=seconds,
                    note=note)
    tape_dir = reports if reports is not None else Path("reports")
    path = tape_dir / "zoo" / f"{name}.tape"
    write_tape(path, config, stats.violating_tape)
    try:
        clean_fails = not replay_tape(path)[0].ok  # the same path on the real engine
    except Exception:  # noqa: BLE001 - the clean engine left the path (its choices no longer fit): no failure
        clean_fails = False
    if clean_fails:
        return Cell(mutant=name, mode="explore", status="missed", tries=stats.executions, seconds=seconds,
                    false_alarms=1, note=f"{mutant.explore}: the clean engine fails the violating path too")
    return Cell(mutant=name, mode="explore", status="detected", tries=stats.executions, seconds=seconds,
                length=len(stats.violating_tape), prop=stats.violation.split(":")[0],
                witness=f"`stepsim zoo --mutant {name} --tape {path}`",
                note=mutant.explore)


def machine_cell(name: str, budget: int, seed: int = 0) -> Cell:
    """The Hypothesis state machine against the mutant: examples to the first failure, shrunk rule count."""
    mutant = MUTANTS[name]
    if name in NOT_FOR_MACHINE:
        return Cell(mutant=name, mode="machine", status="n/a", note="not an engine bug the machine can see")
    from sim.zoo.quality import Mutant, hunt

    result = hunt(Mutant(name, mutant.title, name), seed=seed, max_examples=budget,
                  repro=f"stepsim zoo --mutant {name} --modes machine")
    if not result.detected:
        return Cell(mutant=name, mode="machine", status="missed", tries=result.examples, seconds=result.seconds)
    seconds = result.seconds - (result.shrink_seconds or 0.0)
    return Cell(mutant=name, mode="machine", status="detected", tries=result.examples, seconds=seconds,
                length=result.rules, prop=result.error.split(": ", 1)[-1][:60],
                witness=f"Hypothesis seed {seed} (`stepsim zoo --mutant {name} --modes machine`)",
                note=f"shrinking took {result.shrink_seconds or 0.0:.1f} s")


# --- running the zoo -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Budget:
    """How far each mode may go before a mutant counts as missed."""

    seeds: int = 2000
    explore_cap: int = 2000
    machine_examples: int = 2000
    shrink: bool = True


def run_cell(name: str, mode: str, budget: Budget, reports: Path | None = None) -> Cell:
    """One mutant under one mode (picklable entry point for worker processes)."""
    try:
        if mode in ("random", "swarm", "pct"):
            return seeds_cell(name, mode, budget.seeds, shrink=budget.shrink)
        if mode == "explore":
            return explore_cell(name, budget.explore_cap, reports)
        if mode == "machine":
            return machine_cell(name, budget.machine_examples)
    except Exception as exc:  # noqa: BLE001 - one broken cell must not lose the whole table
        return Cell(mutant=name, mode=mode, status="error", note=f"{type(exc).__name__}: {exc}"[:200])
    raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")


def _cell_job(args: tuple[str, str, Budget, Path | None]) -> Cell:
    return run_cell(*args)


def _rate_job(args: tuple[str, str, int]) -> tuple[str, str, int, int]:
    name, mode, seeds = args
    return (name, mode, *detection_rate(name, mode, seeds))


def run_zoo(names: Sequence[str], modes: Sequence[str], budget: Budget, *, jobs: int = 1,
            reports: Path | None = None, progress: Callable[[Cell], Any] | None = None) -> list[Cell]:
    """Every (mutant, mode) cell, in parallel over `jobs` processes; cells come back in table order."""
    work = [(name, mode, budget, reports) for name in names for mode in modes]
    return list(run_all(_cell_job, work, jobs=jobs, chunksize=1,
                        progress=None if progress is None else lambda _, cell: progress(cell)))


@attrs.frozen(kw_only=True)
class Ratio:
    """PCT against uniform random on one mutant: first-detection seeds and detection rates over N seeds."""

    mutant: str
    uniform_first: int | None
    pct_first: int | None
    uniform_hits: int
    pct_hits: int
    seeds: int

    @property
    def first_ratio(self) -> float | None:
        """Uniform seeds-to-detect over PCT seeds-to-detect (> 1: PCT needs fewer)."""
        if self.uniform_first is None or self.pct_first is None:
            return None
        return self.uniform_first / self.pct_first

    @property
    def rate_ratio(self) -> float | None:
        """PCT detection rate over uniform detection rate (> 1: PCT finds it more often)."""
        if self.uniform_hits == 0:
            return None
        return self.pct_hits / self.uniform_hits


def pct_ratios(cells: Sequence[Cell], seeds: int, *, jobs: int = 1) -> list[Ratio]:
    """For every lease-race mutant: PCT vs uniform, by first detection and by rate over `seeds` seeds."""
    names = [m.name for m in MUTANTS.values() if m.lease_race]
    first = {(c.mutant, c.mode): c.tries for c in cells if c.detected}
    rates: dict[tuple[str, str], int] = {}
    if seeds > 0:
        work = [(name, mode, seeds) for name in names for mode in ("random", "pct")]
        for name, mode, hits, _ in run_all(_rate_job, work, jobs=jobs, chunksize=1):
            rates[(name, mode)] = hits
    return [Ratio(mutant=n, uniform_first=first.get((n, "random")), pct_first=first.get((n, "pct")),
                  uniform_hits=rates.get((n, "random"), 0), pct_hits=rates.get((n, "pct"), 0), seeds=seeds)
            for n in names]


def best_cell(cells: Sequence[Cell]) -> Cell | None:
    """The detecting cell with the fewest runs (then the least time)."""
    found = [c for c in cells if c.detected]
    return min(found, key=lambda c: (c.tries, c.seconds)) if found else None


# --- the report -------------------------------------------------------------------------------------------

MODE_TITLES = {"random": "seeded random", "swarm": "swarm", "pct": f"PCT d={PCT_DEPTH}", "explore": "exhaustive",
               "machine": "Hypothesis machine"}
UNITS = {"random": "seeds", "swarm": "seeds", "pct": "seeds", "explore": "executions", "machine": "examples"}


def _fmt_cell(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    if cell.status == "detected":
        length = f" · len {cell.length}" if cell.length is not None else ""
        return f"**{cell.tries}** · {cell.seconds:.1f} s{length}"
    if cell.status == "missed":
        return f"✗ >{cell.tries} · {cell.seconds:.0f} s"
    if cell.status == "error":
        return "error"
    return "n/a"


def render_report(cells: Sequence[Cell], modes: Sequence[str], budget: Budget, *, ratios: Sequence[Ratio] = (),
                  probes: Any = None, seconds: float = 0.0) -> str:
    """reports/zoo.md: the table, PCT-vs-uniform ratios, per-mutant details and the sometimes probes."""
    by = {(c.mutant, c.mode): c for c in cells}
    names = list(dict.fromkeys(c.mutant for c in cells))
    lines = [
        "# Bug zoo",
        "",
        "Generated by `stepsim zoo` (`sim/zoo/cells.py`; mutants in `sim/zoo/mutants.py`, gate in",
        f"`tests/zoo/test_zoo_gate.py`). Budget per mode: {budget.seeds} seeds, {budget.explore_cap} explorer",
        (f"executions, {budget.machine_examples} Hypothesis examples; stop at the first detection. Total wall "
         f"time {seconds:.0f} s."),
        "",
        "Each cell: **runs to detect** (seeds counted from seed 0, explorer executions, or Hypothesis examples) ·",
        "wall time to detect · length of the counterexample (seeds: non-move trace records of the shortest",
        "failing run found by shrinking the choice tape; explorer: choices on the violating tape; machine: rule",
        "steps of the shrunk program). ✗ = not found within the budget; n/a = outside what the mode can reach",
        "(no explorer configuration contains the bug, or the bug lives in the simulated world rather than the",
        "engine). A detection counts only if the clean engine passes the same seed or tape.",
        "",
        "| mutant | modelled on | expected | " + " | ".join(MODE_TITLES[m] for m in modes) + " | best |",
        "|---|---|---|" + "---|" * len(modes) + "---|",
    ]
    for name in names:
        mutant = MUTANTS[name]
        best = best_cell([by[(name, m)] for m in modes if (name, m) in by])
        best_text = f"{MODE_TITLES[best.mode]} ({best.tries} {UNITS[best.mode]})" if best else "**undetected**"
        expected = "/".join((mutant.prop, *mutant.also))
        lines.append(f"| {mutant.title} (`{name}`) | {mutant.models} | {expected} | "
                     + " | ".join(_fmt_cell(by.get((name, m))) for m in modes) + f" | {best_text} |")
    if ratios:
        lines += ["", "## PCT vs uniform random on the lease-race mutants", "",
                  "First detection (seeds to detect, uniform / PCT: above 1 means PCT needed fewer) and detection",
                  (f"rate over seeds 0..{ratios[0].seeds - 1} (PCT hits / uniform hits: above 1 means PCT finds it "
                   "more often). PCT is `sim.search.pct.PCTPicker(seed, depth=3)` with its default 400 expected steps, as "
                   "in `stepsim fuzz --scheduler pct`."), "",
                  ("| mutant | uniform: seeds to detect | PCT: seeds to detect | ratio | uniform hits | PCT hits "
                   "| rate ratio |"), "|---|---|---|---|---|---|---|"]
        for r in ratios:
            first = f"{r.first_ratio:.2f}" if r.first_ratio is not None else "-"
            rate = f"{r.rate_ratio:.2f}" if r.rate_ratio is not None else "-"
            lines.append(f"| `{r.mutant}` | {r.uniform_first or '-'} | {r.pct_first or '-'} | {first} | "
                         f"{r.uniform_hits}/{r.seeds} | {r.pct_hits}/{r.seeds} | {rate} |")
        better = [r.mutant for r in ratios if (r.rate_ratio or 0.0) >= 10.0]
        lines += ["", f"PCT found {len(better)} of {len(ratios)} lease-race mutants at least 10x as often as uniform "
                  "random" + (f" ({', '.join(better)})." if better else ".") + " These races are triggered by fault "
                  "choices (clock jumps), which PCT leaves to the seed, or need one runner to preempt another "
                  "between a find and a claim, which uniform scheduling does at almost every step while PCT runs "
                  "its top-priority runner until it blocks."]
    lines += ["", "## Details", ""]
    for name in names:
        mutant = MUTANTS[name]
        lines.append(f"- **`{name}`** — setting `{mutant.setting.name}`"
                     + (f", explorer config `{mutant.explore}`" if mutant.explore else "")
                     + f"; gate: {MODE_TITLES[mutant.best]} within {mutant.gate_budget} {UNITS[mutant.best]}.")
        for mode in modes:
            cell = by.get((name, mode))
            if cell is None or cell.status == "n/a":
                continue
            what = f"{cell.prop} — {cell.witness}" if cell.detected else cell.status
            extra = [x for x in (cell.note, f"{cell.false_alarms} seed(s) skipped: the clean engine fails them too"
                                 if cell.false_alarms else "", f"unshrunk {cell.raw_length} records"
                                 if cell.raw_length is not None and cell.raw_length != cell.length else "") if x]
            lines.append(f"  - {MODE_TITLES[mode]}: {what}" + (f" ({'; '.join(extra)})" if extra else ""))
    if probes is not None:
        lines += ["", "## Sometimes probes", "",
                  (f"Computed from the traces of {probes.seeds} runs of the real engine (`sim/world/probes.py`: seeds of "
                   "the default and swarm profiles); every probe must be hit at least once."), "", probes.render()]
    return "\n".join(lines) + "\n"


__all__ = [
    "Budget",
    "Cell",
    "LenientTape",
    "Ratio",
    "best_cell",
    "detection_rate",
    "explore_cell",
    "machine_cell",
    "mode_setting",
    "moves_free",
    "pct_ratios",
    "render_report",
    "run_cell",
    "run_mutant_seed",
    "run_zoo",
    "seeds_cell",
    "shrink_seed",
]
