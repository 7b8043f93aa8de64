"""The sync function's contract: the events that start it, their idempotency keys, its answers.

Every producer (the API's POST /sync, the engine's continuations, the local stage, the DLQ tool)
builds events here and the sync function parses them here, so the wire format has one home. On
the SyncRequests queue the event is the message body, unchanged (``parse_message``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal

from vulnstats.errors import VulnStatsError

__all__ = [
    "DEFAULT_REASON",
    "MAX_MESSAGE_BYTES",
    "MAX_REASON",
    "SUCCESS_STATUSES",
    "ContinuationTrigger",
    "InvalidTriggerError",
    "InvocationStatus",
    "ManualTrigger",
    "ScheduledTrigger",
    "Trigger",
    "TriggerKind",
    "continuation_event",
    "manual_event",
    "parse_message",
    "parse_trigger",
]

_ACTION: Final = "action"
_SYNC: Final = "sync"
_CONTINUE: Final = "continue"
_RUN_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_REASON: Final = 500
DEFAULT_REASON: Final = "manual start"
# The largest trigger is a scheduled event naming a few rules: far below this. A bigger body is
# not a trigger, and is refused before it is parsed.
MAX_MESSAGE_BYTES: Final = 8192

type TriggerKind = Literal["scheduled", "manual", "continuation"]


class InvalidTriggerError(VulnStatsError, ValueError):
    """The event is not one the sync function accepts; the message names what is wrong."""


class InvocationStatus(StrEnum):
    """What one sync invocation answers (its ``status``)."""

    SUCCEEDED = "succeeded"  # the run completed
    CONTINUING = "continuing"  # the run checkpointed and goes on in a new invocation
    FAILED = "failed"  # the run recorded its failure; the next start resumes it
    REFUSED = "refused"  # another run holds the lock
    STALE = "stale"  # a continuation the run no longer needs
    DUPLICATE = "duplicate"  # the same event is being handled (idempotency)
    COALESCED = "coalesced"  # the run the request names is live or done: it carries the request


# The answers after which the event needs no retry: the run it started is done or under way.
SUCCESS_STATUSES: Final = frozenset(
    {InvocationStatus.SUCCEEDED, InvocationStatus.CONTINUING, InvocationStatus.COALESCED}
)


@dataclass(frozen=True, slots=True)
class ScheduledTrigger:
    """An EventBridge scheduled event; its id makes a replayed delivery recognisable."""

    kind: ClassVar[TriggerKind] = "scheduled"
    event_id: str
    time: str
    rules: tuple[str, ...] = ()  # the rule ARNs that fired it (``resources``)

    @property
    def idempotency_key(self) -> str:
        """Duplicate deliveries of one scheduled event run once."""
        return f"scheduled#{self.event_id}"

    def describe(self) -> str:
        """One line for people (the DLQ tool)."""
        names = ", ".join(rule.rsplit("/", 1)[-1] for rule in self.rules)
        return f"scheduled event {self.event_id} at {self.time} (rule {names or '?'})"


@dataclass(frozen=True, slots=True)
class ManualTrigger:
    """``{"action": "sync", "reason": ...}`` sent by a person, a tool or ``POST /sync``.

    ``run_id`` names the run to start (the API promises it to its caller); a start still resumes
    the latest failed run instead, and the run lock still refuses a second run.
    """

    kind: ClassVar[TriggerKind] = "manual"
    reason: str
    run_id: str | None = None

    @property
    def idempotency_key(self) -> None:
        """A person asked: no deduplication."""
        return None

    def to_event(self) -> dict[str, Any]:
        """The invocation event (parse_trigger gives this trigger back)."""
        event: dict[str, Any] = {_ACTION: _SYNC, "reason": self.reason}
        if self.run_id is not None:
            event["run_id"] = self.run_id
        return event

    def describe(self) -> str:
        """One line for people (the DLQ tool)."""
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"manual start: {self.reason!r}{run}"


@dataclass(frozen=True, slots=True)
class ContinuationTrigger:
    """``{"action": "continue", "run_id": ..., "sequence": n}``: a run resuming in a new call."""

    kind: ClassVar[TriggerKind] = "continuation"
    run_id: str
    sequence: int

    @property
    def idempotency_key(self) -> str:
        """Duplicate deliveries of one continuation run once."""
        return f"continue#{self.run_id}#{self.sequence}"

    def to_event(self) -> dict[str, Any]:
        """The invocation event (parse_trigger gives this trigger back)."""
        return {_ACTION: _CONTINUE, "run_id": self.run_id, "sequence": self.sequence}

    def describe(self) -> str:
        """One line for people (the DLQ tool)."""
        return f"continuation {self.sequence} of run {self.run_id}"


type Trigger = ScheduledTrigger | ManualTrigger | ContinuationTrigger


def manual_event(reason: str = DEFAULT_REASON, run_id: str | None = None) -> dict[str, Any]:
    """The event that starts a run now; InvalidTriggerError for a reason or id it would refuse."""
    return _manual(ManualTrigger(reason, run_id).to_event()).to_event()


def continuation_event(run_id: str, sequence: int) -> dict[str, Any]:
    """The event that carries run ``run_id`` on in continuation ``sequence``."""
    return _continuation(ContinuationTrigger(run_id, sequence).to_event()).to_event()


def parse_trigger(event: Any) -> Trigger:
    """Turn a raw invocation event into a typed trigger, or raise InvalidTriggerError."""
    if not isinstance(event, dict):
        raise InvalidTriggerError(f"event: expected a JSON object, got {type(event).__name__}")
    if event.get("source") == "aws.events" or "detail-type" in event:
        return _scheduled(event)
    action = event.get(_ACTION)
    if action == _SYNC:
        return _manual(event)
    if action == _CONTINUE:
        return _continuation(event)
    if action is None:
        raise InvalidTriggerError(
            "event: not a scheduled event and no 'action' field; expected 'sync' or 'continue'"
        )
    raise InvalidTriggerError(f"action: unknown value {action!r}; expected 'sync' or 'continue'")


def parse_message(body: str) -> Trigger:
    """The trigger carried by a SyncRequests message body, or InvalidTriggerError saying why."""
    size = len(body.encode())
    if size > MAX_MESSAGE_BYTES:
        raise InvalidTriggerError(
            f"message body: {size} bytes, larger than a trigger ({MAX_MESSAGE_BYTES} at most)"
        )
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise InvalidTriggerError(f"message body: not JSON ({exc})") from None
    return parse_trigger(event)


def _scheduled(event: dict[str, Any]) -> ScheduledTrigger:
    detail_type = event.get("detail-type")
    if detail_type != "Scheduled Event":
        raise InvalidTriggerError(f"detail-type: expected 'Scheduled Event', got {detail_type!r}")
    event_id = _required_str(event, "id")
    resources = event.get("resources")
    rules = tuple(str(rule) for rule in resources) if isinstance(resources, list) else ()
    return ScheduledTrigger(event_id=event_id, time=_required_str(event, "time"), rules=rules)


def _manual(event: dict[str, Any]) -> ManualTrigger:
    reason = event.get("reason", DEFAULT_REASON)
    if not isinstance(reason, str):
        raise InvalidTriggerError(f"reason: expected a string, got {type(reason).__name__}")
    if len(reason) > MAX_REASON:
        raise InvalidTriggerError(f"reason: longer than {MAX_REASON} characters")
    run_id = event.get("run_id")
    if run_id is not None:
        run_id = _valid_run_id(run_id)
    return ManualTrigger(reason=reason.strip() or DEFAULT_REASON, run_id=run_id)


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
