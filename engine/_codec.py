"""JSON encoding of everything the engine persists, with the 1 MiB limit (DESIGN §2)."""

from __future__ import annotations

import json
from typing import Any

from ._errors import NotSerializable, PayloadTooLarge
from ._records import MAX_PAYLOAD_BYTES, ReceivedEvent


def received_json(event: ReceivedEvent) -> dict[str, Any]:
    """A ReceivedEvent as stored in step results and outputs: its timestamp as ISO-8601 UTC (DESIGN §2)."""
    return {"type": event.type, "payload": event.payload, "timestamp": event.timestamp.isoformat()}


def _record(value: Any) -> Any:
    # Only called for values json cannot encode itself, so plain JSON pays nothing for it.
    if isinstance(value, ReceivedEvent):
        return received_json(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode(value: Any, *, what: str) -> str:
    """Compact JSON for `value`; NOT_JSON_SERIALIZABLE or PAYLOAD_TOO_LARGE with a message naming `what`."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_record)
    except (TypeError, ValueError) as exc:
        raise NotSerializable(f"{what} is not JSON-serialisable: {exc}") from exc
    # json.dumps escapes non-ASCII by default, so characters are bytes here.
    if len(text) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"{what} is {len(text)} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}")
    return text


def decode(text: str | None) -> Any:
    """Inverse of encode; None stays None."""
    return None if text is None else json.loads(text)
