"""The public surface: DESIGN §2's names import from `engine`, and `engine` depends on no harness package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import engine

ENGINE = Path(__file__).resolve().parents[2] / "engine"
DESIGN_NAMES = (
    "Engine", "define_workflow", "WorkflowEvent", "WorkflowStep", "StepContext", "Retries", "NonRetryableError",
    "WaitForEventTimeout", "StepFailed", "NondeterminismError", "EngineError", "Status", "InstanceInfo", "Page",
    "Runtime", "SystemRuntime",
)
RECORD_NAMES = ("ErrorInfo", "History", "StepRecord", "EventRecord", "ReceivedEvent")
HARNESS = {"sim", "properties", "scenarios", "tests", "bench"}


@pytest.mark.parametrize("name", DESIGN_NAMES + RECORD_NAMES)
def test_design_names_are_public(name: str) -> None:
    """Each name of DESIGN §2's import line (and the returned records) is importable and listed in __all__."""
    assert name in engine.__all__
    assert getattr(engine, name) is not None


def test_all_lists_only_real_public_names() -> None:
    """Every __all__ entry resolves, is unique, and none is private."""
    assert len(set(engine.__all__)) == len(engine.__all__)
    for name in engine.__all__:
        assert not name.startswith("_") and hasattr(engine, name), name


@pytest.mark.parametrize(
    ("name", "code"),
    [("WorkflowNotFound", "WORKFLOW_NOT_FOUND"), ("InstanceNotFound", "INSTANCE_NOT_FOUND"),
     ("InstanceTerminal", "INSTANCE_TERMINAL"), ("InvalidParams", "INVALID_PARAMS"), ("InvalidId", "INVALID_ID"),
     ("EventIdConflict", "EVENT_ID_CONFLICT"), ("BatchTooLarge", "BATCH_TOO_LARGE"),
     ("PayloadTooLarge", "PAYLOAD_TOO_LARGE"), ("NameTooLong", "NAME_TOO_LONG"), ("TooManySteps", "TOO_MANY_STEPS")],
)
def test_error_codes_are_stable(name: str, code: str) -> None:
    """Each caller-facing error is an EngineError with its documented code."""
    cls = getattr(engine, name)
    assert issubclass(cls, engine.EngineError) and cls.code == code


def test_workflow_visible_errors() -> None:
    """WaitForEventTimeout is a NonRetryableError; StepFailed's str() is the original message."""
    assert issubclass(engine.WaitForEventTimeout, engine.NonRetryableError)
    failed = engine.StepFailed("do:x", "KeyError", "'sku'", 3)
    assert (str(failed), failed.error_name, failed.attempts) == ("'sku'", "KeyError", 3)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_never_imports_the_harness() -> None:
    """No engine module imports sim, properties, scenarios, tests or bench."""
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) >= 10
    offenders = {p.name: sorted(_imported_roots(p) & HARNESS) for p in modules if _imported_roots(p) & HARNESS}
    assert offenders == {}


def test_importing_engine_loads_no_harness_module() -> None:
    """A fresh interpreter importing engine has none of the harness packages in sys.modules."""
    code = ("import sys, engine\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HARNESS)!r})\n"
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=ENGINE.parent)
    assert result.stdout.strip() == ""
