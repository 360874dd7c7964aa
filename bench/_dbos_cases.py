"""(e) DBOS Transact running (a)-(c) on SQLite with the same pragmas as the engine (WAL, synchronous=NORMAL).

Skipped with a clear message when `dbos` is not importable (it is the optional `bench` extra).
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from ._records import Measurement, Sizes


def load_dbos() -> tuple[ModuleType | None, str | None, str]:
    """(module, version, note): the DBOS side if `dbos` imports, else None and why it was skipped."""
    try:
        app = importlib.import_module("bench._dbos_app")
    except ImportError as exc:
        return None, None, (f"DBOS skipped: `dbos` is not importable ({exc}); "
                            "install the bench extra: pip install -e '.[bench]'")
    try:
        version = importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - imported but not installed metadata
        version = "unknown"
    return app, version, f"DBOS Transact {version}, sync @DBOS.workflow/@DBOS.step on SQLite"


def _timed(app: ModuleType, path: str, body: Callable[[], None], seen: set[tuple[str, int]]) -> float:
    app.launch(path, seen)
    try:
        gc.collect()
        start = time.perf_counter()
        body()
        return time.perf_counter() - start
    finally:
        app.destroy()


def _check(total: int, n: int) -> None:
    if total != n * (n - 1) // 2:
        raise RuntimeError(f"DBOS workflow of {n} steps returned {total}")


def dbos_cases(app: ModuleType, workdir: str, sizes: Sizes, repeats: int) -> list[Measurement]:
    """(a), (b) and (c) on DBOS; each repetition launches DBOS over a fresh file (launch not timed)."""
    seen: set[tuple[str, int]] = set()
    wf = app.steps_workflow
    big, count, small = sizes.one_workflow_steps, sizes.workflows, sizes.steps_per_workflow

    def one() -> None:
        _check(wf(big), big)

    def sequential() -> None:
        for _ in range(count):
            _check(wf(small), small)

    def threaded() -> None:
        # DBOS runs a sync workflow in the calling thread; `concurrency` threads are its concurrent runners.
        with ThreadPoolExecutor(max_workers=sizes.concurrency) as pool:
            for total in pool.map(lambda _: wf(small), range(count)):
                _check(total, small)

    cases = [
        ("a", f"1 workflow x {big} steps", one, big, 1),
        ("b", f"{count} x {small} steps, sequential", sequential, count * small, count),
        ("c", f"{count} x {small} steps, {sizes.concurrency} threads", threaded, count * small, count),
    ]
    results = []
    for case, label, body, steps, workflows in cases:
        seconds = [
            _timed(app, os.path.join(workdir, f"dbos-{case}-{rep}.sqlite"), body, seen) for rep in range(repeats)
        ]
        results.append(Measurement(case=case, system="dbos", label=label, seconds=tuple(seconds), steps=steps,
                                   workflows=workflows))
    applied = ", ".join(f"journal_mode={mode} synchronous={sync}" for mode, sync in sorted(seen))
    return [
        Measurement(case=m.case, system=m.system, label=m.label, seconds=m.seconds, steps=m.steps,
                    workflows=m.workflows, note=f"pragmas seen: {applied}")
        for m in results
    ]
