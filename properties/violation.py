"""A violated property, with the evidence that shows it."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Violation:
    """Property `prop` (e.g. "P3 lease exclusivity") failed: `message` says how, `evidence` shows the rows."""

    prop: str
    message: str
    evidence: dict[str, Any] = attrs.field(factory=dict)

    def render(self) -> str:
        """One paragraph for terminals and reports."""
        lines = [f"{self.prop}: {self.message}"]
        for key, value in sorted(self.evidence.items()):
            lines.append(f"    {key}: {value}")
        return "\n".join(lines)
