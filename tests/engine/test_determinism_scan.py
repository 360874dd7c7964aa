"""The engine reaches time, randomness, ids and waiting only through its Runtime (DESIGN §4, STYLE)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engine"
SYSTEM_ADAPTER = "_runtime.py"  # the one module allowed to touch the real world

# Ambient calls the engine must not make; `random.Random` as a type (no call) stays allowed.
FORBIDDEN = [
    (re.compile(r"\btime\s*\.\s*(time|time_ns|monotonic|monotonic_ns|perf_counter)\b"), "wall/monotonic clock"),
    (re.compile(r"\bdatetime\s*\.\s*(now|utcnow|today)\b"), "wall clock via datetime"),
    (re.compile(r"\brandom\s*\.\s*\w+\s*\("), "global random call"),
    (re.compile(r"\buuid\s*\.\s*uuid[14]\b"), "random/host-based uuid"),
    (re.compile(r"\basyncio\s*\.\s*sleep\b"), "real sleep"),
    (re.compile(r"^\s*from\s+(time|random|uuid)\s+import\b"), "from-import hiding an ambient call"),
]


# Python 3.12+ splits f-strings into several tokens; their literal parts are text, not code.
_TEXT_TOKENS = {tokenize.COMMENT, tokenize.STRING} | {
    getattr(tokenize, name) for name in ("FSTRING_MIDDLE",) if hasattr(tokenize, name)
}


def code_lines(source: str) -> dict[int, str]:
    """The source's lines with comments and string literals blanked, so docs may mention forbidden names."""
    lines = source.splitlines()
    blank: dict[int, list[str]] = {i + 1: list(line) for i, line in enumerate(lines)}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _TEXT_TOKENS:
            (srow, scol), (erow, ecol) = tok.start, tok.end
            for row in range(srow, erow + 1):
                chars = blank[row]
                start = scol if row == srow else 0
                end = ecol if row == erow else len(chars)
                chars[start:end] = " " * (end - start)
    return {n: "".join(chars) for n, chars in blank.items()}


def scan(paths: list[Path]) -> list[str]:
    """Every forbidden ambient call in `paths`, as 'file:line: reason: code'."""
    found = []
    for path in paths:
        for number, line in code_lines(path.read_text()).items():
            for pattern, reason in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{path.name}:{number}: {reason}: {line.strip()}")
    return found


def engine_modules() -> list[Path]:
    return sorted(p for p in ENGINE.glob("*.py") if p.name != SYSTEM_ADAPTER)


def test_engine_makes_no_ambient_calls() -> None:
    """No engine module other than the system runtime reads the clock, global random, uuid4 or sleeps."""
    modules = engine_modules()
    assert len(modules) >= 10, "the scan must actually see the engine's modules"
    violations = scan(modules)
    assert violations == [], "ambient calls outside engine/_runtime.py:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    "planted",
    ["t = time.time()", "t = time.monotonic()", "d = datetime.now(timezone.utc)", "d = datetime.datetime.utcnow()",
     "x = random.random()", "x = random.randint(1, 6)", "x = random.choice(items)", "i = uuid.uuid4().hex",
     "await asyncio.sleep(1)", "from time import time"],
)
def test_scanner_catches_a_planted_violation(tmp_path: Path, planted: str) -> None:
    """The scanner reports a planted ambient call with its file and line."""
    module = tmp_path / "planted.py"
    module.write_text(f'"""Docstrings may say time.time() freely."""\n\n\nasync def f(items):\n    {planted}\n')
    (violation,) = scan([module])
    assert violation.startswith("planted.py:5: ")


def test_scanner_allows_types_comments_and_strings(tmp_path: Path) -> None:
    """random.Random as a type, and forbidden names inside comments or strings, are not violations."""
    module = tmp_path / "clean.py"
    module.write_text(
        "import random\n"
        "rng: random.Random\n"
        "def f(r: random.Random) -> str:  # never time.time() here\n"
        "    return 'asyncio.sleep(1) and uuid.uuid4() in a string'\n"
    )
    assert scan([module]) == []


def test_scanner_sees_the_system_adapter_calls() -> None:
    """The excluded system runtime really makes these calls, so the exclusion (not blindness) keeps it clean."""
    reasons = {v.split(": ")[1] for v in scan([ENGINE / SYSTEM_ADAPTER])}
    assert {"wall/monotonic clock", "random/host-based uuid", "real sleep"} <= reasons
