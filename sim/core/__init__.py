"""The deterministic core: one choice stream, a virtual clock, a controlled scheduler, the simulated runtime
and the trace. It knows nothing of workflows or the engine; everything else in `sim` is built on it."""
