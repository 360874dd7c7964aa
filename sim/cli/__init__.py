"""The `stepsim` command, on top of everything else in `sim`."""

from sim.cli.main import main

__all__ = ["main"]
