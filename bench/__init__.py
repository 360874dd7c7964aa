"""Benchmarks for stepsim: the engine against DBOS Transact and the raw SQLite limit (issue 6).

`run_benchmarks()` measures and returns `BenchResults`; `bench_command_main()` is what `stepsim bench` runs;
`python -m bench` runs `main()`. Results print as a rich table and are written to reports/bench.md.
"""

from ._records import BenchResults, Latency, Measurement, ProfileLine, Ratio, Sizes
from ._report import markdown, print_results, ratios, rows, tables
from .run import bench_command_main, main, run_benchmarks, write_report

__all__ = [
    "BenchResults", "Latency", "Measurement", "ProfileLine", "Ratio", "Sizes", "bench_command_main", "main",
    "markdown", "print_results", "ratios", "rows", "run_benchmarks", "tables", "write_report",
]
