"""Invariants over database state and traces (DESIGN §6), checked by the simulator after every move."""

from properties.checker import Checker, Violation
from properties.liveness import check_liveness, check_replays
from properties.state import check_state

__all__ = ["Checker", "Violation", "check_liveness", "check_replays", "check_state"]
