"""The one way a campaign runs its items: in this process, or across worker processes, in order.

Fuzz campaigns, the zoo's cells and detection rates, and scenario files all map a picklable function over a
list of jobs; each item is independent (its own seed, its own world), so a process pool changes only the
wall time, never a result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


def run_all(fn: Callable[[J], R], items: Iterable[J], *, jobs: int = 1, chunksize: int | None = None,
            progress: Callable[[J, R], object] | None = None) -> Iterator[R]:
    """Yield `fn(item)` for every item, in item order: serially when `jobs <= 1` (or for one item), else over
    `jobs` processes (`fn` and the items must pickle). `chunksize=1` suits long, uneven items (zoo cells,
    scenario files). `progress(item, result)` sees each result as it is yielded."""
    work = list(items)
    if jobs <= 1 or len(work) <= 1:
        results: Iterable[R] = map(fn, work)
        for item, result in zip(work, results, strict=True):
            if progress is not None:
                progress(item, result)
            yield result
        return
    # Chunks of ~1/8 of a worker's share: few round trips, and still a fair spread of slow items.
    chunk = chunksize or max(1, len(work) // (jobs * 8))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for item, result in zip(work, pool.map(fn, work, chunksize=chunk), strict=True):
            if progress is not None:
                progress(item, result)
            yield result
