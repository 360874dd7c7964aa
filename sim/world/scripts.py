"""Random step scripts for the model's `m-script` program, and the client events that go with them.

A script is a list of step requests (`properties.programs.request_of`) drawn so that a campaign reaches every
option of the step API: retries with each backoff and zero or non-zero delays, final failures caught or
not, attempt timeouts, callbacks that park (where faults strike) or block in sync code near the lease,
repeated names (`#n` keys) and refused names (`#`), sleeps and `sleep_until` in the past and the future,
waits with and without a multi-field `match`, and events that match, half-match, miss the type, arrive
before or after the deadline, repeat an event id or reuse one across instances. Every instance of it is
judged by the reference model.
"""

from __future__ import annotations

from typing import Any

from sim.core.choices import ChoiceSource
from sim.core.clock import DEFAULT_START

NAMES = ("a", "b", "c")  # few names, so repeats (keys do:a#2, ...) are common
EVENT_TYPES = ("go", "alt")


def _pick(choices: ChoiceSource, options: tuple[Any, ...]) -> Any:
    return options[choices.choose("input", len(options))]


def _do(choices: ChoiceSource, lease: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"op": "do", "name": _pick(choices, NAMES)}
    if choices.flip("input", 0.05):
        spec["name"] = "x#2"  # refused at the call: nothing written, no key used
        return spec
    spec["fail"] = _pick(choices, (0, 0, 1, 2, 3))
    spec["limit"] = _pick(choices, (0, 1, 2, 3))
    spec["delay"] = _pick(choices, (0.0, 1.0, 5.0, 30.0))
    spec["backoff"] = _pick(choices, ("constant", "linear", "exponential"))
    spec["catch"] = choices.flip("input", 0.6)
    shape = choices.choose("input", 4)
    if shape == 1:
        spec["park"] = True  # async, one yield point inside: injected failures and hangs land here
    elif shape == 2 and choices.flip("input", 0.3):
        spec["busy"] = lease * _pick(choices, (0.3, 0.9, 1.3))  # sync code that only the heartbeat keeps
    spec["timeout"] = _pick(choices, (None, 10.0, 120.0)) if "busy" not in spec else 4 * lease
    return spec


def _sleep(choices: ChoiceSource) -> dict[str, Any]:
    if choices.flip("input", 0.3):
        # Absolute wake times: long past (at once), just after the start, or hours later.
        at = DEFAULT_START + _pick(choices, (-3600.0, 5.0, 600.0, 7200.0))
        return {"op": "sleep_until", "name": _pick(choices, NAMES), "at": at}
    return {"op": "sleep", "name": _pick(choices, NAMES), "seconds": _pick(choices, (0.0, 1.0, 10.0, 3600.0))}


def _wait(choices: ChoiceSource) -> dict[str, Any]:
    spec: dict[str, Any] = {"op": "wait", "name": _pick(choices, NAMES), "type": _pick(choices, EVENT_TYPES),
                            "timeout": _pick(choices, (5.0, 60.0, 600.0, 3600.0)), "catch": choices.flip("input", 0.6)}
    fields = choices.choose("input", 3)  # 0: no match, 1 or 2 fields
    if fields:
        spec["match"] = {k: _pick(choices, (1, 2)) for k in ("k", "j")[:fields]}
    return spec


def _payload(choices: ChoiceSource, wait: dict[str, Any]) -> Any:
    """A payload the wait accepts, half-accepts (one field wrong or missing), or a non-dict."""
    match = dict(wait.get("match") or {"k": 1})
    kind = choices.choose("input", 5)
    if kind <= 1:
        return {**match, "extra": choices.choose("input", 3)}  # all fields equal, plus one more
    if kind == 2 and len(match) > 1:
        return {"k": match["k"]}  # a partial match: the other field missing
    if kind == 3:
        return {**match, "k": 3}  # one field wrong
    return choices.choose("input", 3)  # not a dict: never matches a filter


def script_ops(choices: ChoiceSource, index: int, lease: float) -> list[dict[str, Any]]:
    """A create of an `m-script` instance, then the events its waits may consume (some late or repeated),
    as the keyword arguments of the workload's `Op`s."""
    iid = f"m{index}"
    script = []
    for _ in range(2 + choices.choose("input", 4)):
        kind = choices.choose("input", 5)
        script.append(_do(choices, lease) if kind <= 1 else _sleep(choices) if kind == 2 else _wait(choices))
    ops: list[dict[str, Any]] = [dict(kind="create", workflow="m-script", instance_id=iid, params={"script": script})]
    for n, wait in enumerate(s for s in script if s["op"] == "wait"):
        for m in range(choices.choose("input", 3)):
            type = wait["type"] if choices.flip("input", 0.8) else _pick(choices, EVENT_TYPES)
            # Event ids: none, this instance's own (repeated: a duplicate), or one shared by every instance
            # (sent to a second instance: EVENT_ID_CONFLICT).
            event_id = _pick(choices, (None, None, f"{iid}-{n}", "shared"))
            ops.append(dict(kind="event", workflow="m-script", instance_id=iid, event_type=type,
                            payload=_payload(choices, wait), event_id=event_id, late=choices.flip("input", 0.3),
                            at_deadline=choices.flip("input", 0.25)))
    return ops


__all__ = ["script_ops"]
