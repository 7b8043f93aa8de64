"""What started a sync invocation: the schedule, a person, or the run itself continuing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ContinuationTrigger",
    "InvalidTriggerError",
    "ManualTrigger",
    "ScheduledTrigger",
    "Trigger",
    "parse_trigger",
]

_RUN_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_MAX_REASON: Final = 500


class InvalidTriggerError(ValueError):
    """The event is not one the sync function accepts; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class ScheduledTrigger:
    """An EventBridge scheduled event; its id makes a replayed delivery recognisable."""

    event_id: str
    time: str


@dataclass(frozen=True, slots=True)
class ManualTrigger:
    """`{"action": "sync", "reason": "..."}` sent by a person or by `POST /sync`."""

    reason: str
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContinuationTrigger:
    """`{"action": "continue", "run_id": ..., "sequence": n}`: a run resuming in a new call."""

    run_id: str
    sequence: int


Trigger = ScheduledTrigger | ManualTrigger | ContinuationTrigger


def parse_trigger(event: Any) -> Trigger:
    """Turn a raw invocation event into a typed trigger, or raise InvalidTriggerError."""
    if not isinstance(event, dict):
        raise InvalidTriggerError(f"event: expected a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.events" or "detail-type" in event:
        return _scheduled(event)
    action = event.get("action")
    if action == "sync":
        return _manual(event)
    if action == "continue":
        return _continuation(event)
    if action is None:
        raise InvalidTriggerError(
            "event: not a scheduled event and no 'action' field; expected 'sync' or 'continue'"
        )
    raise InvalidTriggerError(f"action: unknown value {action!r}; expected 'sync' or 'continue'")


def _scheduled(event: dict[str, Any]) -> ScheduledTrigger:
    detail_type = event.get("detail-type")
    if detail_type != "Scheduled Event":
        raise InvalidTriggerError(f"detail-type: expected 'Scheduled Event', got {detail_type!r}")
    event_id = _required_str(event, "id")
    return ScheduledTrigger(event_id=event_id, time=_required_str(event, "time"))


def _manual(event: dict[str, Any]) -> ManualTrigger:
    reason = event.get("reason", "manual start")
    if not isinstance(reason, str):
        raise InvalidTriggerError(f"reason: expected a string, got {type(reason).__name__}")
    if len(reason) > _MAX_REASON:
        raise InvalidTriggerError(f"reason: longer than {_MAX_REASON} characters")
    run_id = event.get("run_id")
    if run_id is not None:
        run_id = _valid_run_id(run_id)
    return ManualTrigger(reason=reason.strip() or "manual start", run_id=run_id)


def _continuation(event: dict[str, Any]) -> ContinuationTrigger:
    run_id = _valid_run_id(event.get("run_id"))
    sequence = event.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise InvalidTriggerError(f"sequence: expected a positive integer, got {sequence!r}")
    return ContinuationTrigger(run_id=run_id, sequence=sequence)


def _valid_run_id(value: Any) -> str:
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise InvalidTriggerError(
            f"run_id: expected 1-128 letters, digits or '_.:-', got {value!r}"
        )
    return value


def _required_str(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidTriggerError(f"{key}: missing or not a non-empty string")
    return value
