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


def _one_of(choices: ChoiceSource, options: list[dict[str, Any]]) -> dict[str, Any]:
    return options[choices.choose("input", len(options))]


HUGE = "x" * (1024 * 1024 + 1)  # one byte over DESIGN §2's payload limit once JSON-encoded
# Refused at the call (INVALID_STEP_NAME, INVALID_ARGUMENT, NAME_TOO_LONG): nothing written, no key used.
BAD_NAMES = ("x#2", "x#2", "x#2", "", "n" * 300)


# Callback shapes (properties.programs.Do.shape), plain functions most often; "nested" is refused.
SHAPES = ("def",) * 6 + ("partial", "object", "slots", "async", "awaitable", "async-awaitable", "nested")
# How durations are written; the last four are refused (INVALID_ARGUMENT) and rare.
FORMS = ("seconds",) * 14 + ("text", "text", "timedelta", "timedelta", "bad", "negative", "bool", "list")


def _do(choices: ChoiceSource, lease: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"op": "do", "name": _pick(choices, NAMES)}
    if choices.flip("input", 0.07):
        spec["name"] = _pick(choices, BAD_NAMES)
        return spec
    if choices.flip("input", 0.04):
        spec["result"] = _pick(choices, ("unjson", "unjson", "unjson", "huge"))  # fails the step for good
    spec["shape"] = _pick(choices, SHAPES)
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
        form = _pick(choices, ("epoch", "epoch", "epoch", "aware", "aware", "naive", "text"))
        return {"op": "sleep_until", "name": _pick(choices, NAMES), "at": at, "form": form}
    return {
        "op": "sleep",
        "name": _pick(choices, NAMES),
        "seconds": _pick(choices, (0.0, 1.0, 10.0, 3600.0)),
        "form": _pick(choices, FORMS),
    }


def _wait(choices: ChoiceSource) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "op": "wait",
        "name": _pick(choices, NAMES),
        "type": _pick(choices, EVENT_TYPES),
        "timeout": _pick(choices, (5.0, 60.0, 600.0, 3600.0)),
        "catch": choices.flip("input", 0.6),
        "form": _pick(choices, FORMS),
    }
    fields = choices.choose("input", 3)  # 0: no match, 1 or 2 fields
    if fields:
        spec["match"] = {k: _pick(choices, (1, 2)) for k in ("k", "j")[:fields]}
    if choices.flip("input", 0.05):  # a call the engine refuses: type, match or timeout out of range
        spec.update(
            _one_of(
                choices,
                [
                    {"type": ""},
                    {"type": "t" * 200},
                    {"match": ["k"]},
                    {"timeout": 0.5},
                    {"timeout": 400 * 86400.0},
                ],
            )
        )
    return spec


def _payload(choices: ChoiceSource, wait: dict[str, Any]) -> Any:
    """A payload the wait accepts, half-accepts (one field wrong or missing), or a non-dict."""
    match = dict(wait["match"]) if isinstance(wait.get("match"), dict) else {"k": 1}
    kind = choices.choose("input", 5)
    if kind <= 1:
        return {**match, "extra": choices.choose("input", 3)}  # all fields equal, plus one more
    if kind == 2 and len(match) > 1:
        return {"k": match["k"]}  # a partial match: the other field missing
    if kind == 3:
        return {**match, "k": 3}  # one field wrong
    return choices.choose("input", 3)  # not a dict: never matches a filter


def _script(choices: ChoiceSource, lease: float, steps: int) -> list[dict[str, Any]]:
    script = []
    for _ in range(steps):
        kind = choices.choose("input", 5)
        script.append(_do(choices, lease) if kind <= 1 else _sleep(choices) if kind == 2 else _wait(choices))
    return script


def _bad_event(choices: ChoiceSource, iid: str) -> dict[str, Any]:
    """An event the engine must refuse with its code, writing nothing."""
    base: dict[str, Any] = dict(
        kind="event", workflow="m-script", instance_id=iid, event_type="go", payload=1
    )
    base.update(
        _one_of(
            choices,
            [
                {"instance_id": "bad id!"},
                {"instance_id": f"{iid}-nobody"},
                {"event_type": ""},
                {"event_id": "bad id"},
                {"payload": HUGE},
                {"payload": {1, 2}},
                {"event_type": "t" * 200},
            ],
        )
    )
    return base


def _bad_create(choices: ChoiceSource, iid: str) -> dict[str, Any]:
    """A create the engine must refuse: unknown workflow, bad id, params off the schema, params too large."""
    base: dict[str, Any] = dict(
        kind="create", workflow="m-script", instance_id=f"{iid}-x", params={"script": []}
    )
    base.update(
        _one_of(
            choices,
            [
                {"workflow": "m-missing"},
                {"instance_id": "bad id!"},
                {"params": {"script": "none"}},
                {"params": {"script": [{"op": "sleep", "name": "a", "seconds": 0.0, "pad": HUGE}]}},
            ],
        )
    )
    return base


def _batch(choices: ChoiceSource, iid: str, lease: float) -> dict[str, Any]:
    """A batch of new script instances, maybe with this instance's id (existing: skipped), a repeat, and an
    invalid item (bad id or params: the whole batch is refused, nothing written)."""
    items: list[Any] = [
        (f"{iid}-b{k}", {"script": _script(choices, lease, 1 + choices.choose("input", 2))})
        for k in range(1 + choices.choose("input", 3))
    ]
    if choices.flip("input", 0.4):
        items.append((iid, {"script": []}))
    if choices.flip("input", 0.2):
        items.append(items[0])
    if choices.flip("input", 0.25):
        items.insert(
            choices.choose("input", len(items) + 1),
            _pick(choices, (("bad id!", {"script": []}), (f"{iid}-bad", {"script": "none"}), "junk")),
        )
    if choices.flip("input", 0.1):
        items = [(f"{iid}-many{k}", {"script": []}) for k in range(101)]
    return dict(kind="batch", workflow="m-script", instance_id=iid, params=tuple(items))


def script_ops(choices: ChoiceSource, index: int, lease: float) -> list[dict[str, Any]]:
    """A create of an `m-script` instance, then the events its waits may consume (some late or repeated),
    maybe a batch, refused creates and events, and reads, as the keyword arguments of the workload's `Op`s."""
    iid = f"m{index}"
    script = _script(choices, lease, 2 + choices.choose("input", 4))
    params: dict[str, Any] = {"script": script}
    if choices.flip("input", 0.03):
        params["end"] = _pick(choices, ("unjson", "unjson", "huge"))
    ops: list[dict[str, Any]] = [dict(kind="create", workflow="m-script", instance_id=iid, params=params)]
    if choices.flip("input", 0.15):
        ops.append(_batch(choices, iid, lease))
    if choices.flip("input", 0.1):
        ops.append(_bad_create(choices, iid))
    if choices.flip("input", 0.1):
        ops.append(_bad_event(choices, iid))
    if choices.flip("input", 0.3):
        ops.append(dict(kind="read", workflow="m-script", instance_id=iid))
    for n, wait in enumerate(s for s in script if s["op"] == "wait"):
        for m in range(choices.choose("input", 3)):
            type = wait["type"] if choices.flip("input", 0.8) else _pick(choices, EVENT_TYPES)
            # Event ids: none, this instance's own (repeated: a duplicate), or one shared by every instance
            # (sent to a second instance: EVENT_ID_CONFLICT).
            event_id = _pick(choices, (None, None, f"{iid}-{n}", "shared"))
            ops.append(
                dict(
                    kind="event",
                    workflow="m-script",
                    instance_id=iid,
                    event_type=type,
                    payload=_payload(choices, wait),
                    event_id=event_id,
                    late=choices.flip("input", 0.3),
                    at_deadline=choices.flip("input", 0.25),
                )
            )
    if choices.flip("input", 0.3):
        # A pause anywhere among the instance's ops, events included (requested if a runner holds the
        # instance: it lands at the next suspension point, whatever its kind), and a resume at the end.
        at = 1 + choices.choose("input", len(ops))
        ops[at:at] = [
            dict(kind="pause", workflow="m-script", instance_id=iid, when_held=choices.flip("input", 0.7))
        ]
        ops.append(dict(kind="resume", workflow="m-script", instance_id=iid))
    return ops


__all__ = ["script_ops"]
