"""The world the current simulated run belongs to, for step callbacks of the built-in workflows.

Its own module so the workload (which defines those callbacks) and the world (which runs them) need not
import each other.
"""

from __future__ import annotations

import contextvars
from typing import Any

CURRENT_WORLD: contextvars.ContextVar[Any] = contextvars.ContextVar("stepsim_world", default=None)
