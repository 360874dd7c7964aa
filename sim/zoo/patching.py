"""Edit-and-recompile patching for the bug zoo: a mutant is the engine's own source with one small edit.

`rewrite` reads an engine function's source, applies the edit (the old text must occur exactly once, or a
given number of times, so an engine refactor fails loudly instead of silently testing the real engine),
recompiles it against the module's live globals and swaps it in through a `Patch` (pytest's monkeypatch or
our `Patcher`), which puts everything back.
"""

from __future__ import annotations
import __future__

import inspect
import textwrap
import types
from typing import Any, Protocol

Edit = tuple[str, str] | tuple[str, str, int]
_MISSING = object()


class Patch(Protocol):
    """Anything with monkeypatch's `setattr`: pytest's MonkeyPatch or our `Patcher`."""

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None: ...


class Patcher:
    """A minimal monkeypatch for code outside pytest: `setattr` now, `undo` puts every attribute back."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None:
        old = getattr(target, name, _MISSING)
        if old is _MISSING and raising:
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        # A method is saved from the class's own dict, so undo never turns an inherited one into an override.
        if isinstance(target, type):
            old = target.__dict__.get(name, _MISSING)
        self._saved.append((target, name, old))
        setattr(target, name, value)

    def undo(self) -> None:
        for target, name, old in reversed(self._saved):
            if old is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, old)
        self._saved.clear()


def rewritten(owner: Any, name: str, *edits: Edit) -> types.FunctionType:
    """`owner.name` (a module function or a method) recompiled from its own source with `edits` applied.

    An edit is (old, new) or (old, new, n): `old` must occur exactly once (or n times) in the source.
    """
    original = getattr(owner, name)
    if not isinstance(original, types.FunctionType) or original.__closure__:
        raise TypeError(f"{name} must be a plain function without a closure to be rewritten")
    source = textwrap.dedent(inspect.getsource(original))
    for old, new, *times in edits:
        expected = times[0] if times else 1
        if source.count(old) != expected:
            raise AssertionError(f"mutant edit for {original.__qualname__} must match {expected} time(s), "
                                 f"found {source.count(old)}: {old!r}")
        source = source.replace(old, new)
    # Engine modules use postponed annotations; compile the same way so annotations stay unevaluated.
    module_code = compile(source, f"<mutant of {original.__qualname__}>", "exec",
                          flags=__future__.annotations.compiler_flag, dont_inherit=True)
    code = next(c for c in module_code.co_consts if isinstance(c, types.CodeType) and c.co_name == name)
    # The module's live globals, not a copy: a mutant still sees every other (patched) engine function.
    mutant = types.FunctionType(code, original.__globals__, name, original.__defaults__)
    mutant.__kwdefaults__ = original.__kwdefaults__
    mutant.__qualname__ = original.__qualname__
    mutant.__doc__ = original.__doc__
    return mutant


def rewrite(patch: Patch, owner: Any, name: str, *edits: Edit) -> None:
    """Replace `owner.name` by its own source with `edits` applied, through `patch` (undone with it)."""
    patch.setattr(owner, name, rewritten(owner, name, *edits))


__all__ = ["Edit", "Patch", "Patcher", "rewrite", "rewritten"]
