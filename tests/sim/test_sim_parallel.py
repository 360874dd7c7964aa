"""run_all: the one campaign runner (serial or over processes) behind fuzz, zoo and scenario runs."""

from __future__ import annotations

from sim.core.parallel import run_all


def _square(n: int) -> int:
    return n * n


def test_serial_and_process_runs_give_the_same_results_in_item_order() -> None:
    """Two worker processes return exactly what one process does, in the items' order, with progress per item."""
    seen: list[tuple[int, int]] = []
    serial = list(run_all(_square, range(40)))
    parallel = list(run_all(_square, range(40), jobs=2, progress=lambda item, result: seen.append((item, result))))
    assert serial == parallel == [n * n for n in range(40)]
    assert seen == list(zip(range(40), serial, strict=True))


def test_chunksize_one_keeps_the_order_too() -> None:
    """Long, uneven items go one at a time; the order still holds."""
    assert list(run_all(_square, [5, 1, 4], jobs=2, chunksize=1)) == [25, 1, 16]
