"""The scenario DSL (DESIGN §7): `from sim.scenario import Scenario, create, tick, ...`.

`dsl` holds the public entry point; `steps`, `expect`, `run`, `trace`, `files` and `pytest_plugin` its parts.
"""

from sim.scenario.dsl import *  # noqa: F403 - the DSL's public names, listed in dsl.__all__
from sim.scenario.dsl import __all__  # noqa: F401
