"""Which events start a sync, and the message a bad event gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync_fn.triggers import (
    ContinuationTrigger,
    InvalidTriggerError,
    ManualTrigger,
    ScheduledTrigger,
    parse_trigger,
)

EVENTS = Path(__file__).resolve().parents[3] / "events"


def _fixture(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_scheduled_fixture_is_a_scheduled_trigger_keyed_by_event_id() -> None:
    # given the EventBridge fixture / when parsed
    trigger = parse_trigger(_fixture("sync_scheduled.json"))
    # then the event id is kept, so a replayed delivery can be recognised
    assert trigger == ScheduledTrigger(
        event_id="53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", time="2026-11-22T09:00:00Z"
    )


def test_manual_fixture_keeps_the_reason() -> None:
    trigger = parse_trigger(_fixture("sync_manual.json"))
    assert isinstance(trigger, ManualTrigger)
    assert trigger.reason == "manual run after rotating the Vanta credentials"


def test_manual_without_reason_gets_a_default() -> None:
    assert parse_trigger({"action": "sync"}) == ManualTrigger(reason="manual start")


def test_continuation_carries_run_id_and_sequence() -> None:
    event = {"action": "continue", "run_id": "run-2026-11-22T09:00:00Z", "sequence": 3}
    assert parse_trigger(event) == ContinuationTrigger(
        run_id="run-2026-11-22T09:00:00Z", sequence=3
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event: expected a JSON object, got list"),
        ({}, "no 'action' field"),
        ({"action": "delete"}, "action: unknown value 'delete'"),
        ({"action": "sync", "reason": 7}, "reason: expected a string, got int"),
        ({"action": "sync", "reason": "x" * 501}, "reason: longer than 500 characters"),
        ({"action": "continue", "sequence": 1}, "run_id: expected"),
        ({"action": "continue", "run_id": "../etc", "sequence": 1}, "run_id: expected"),
        ({"action": "continue", "run_id": "r1", "sequence": 0}, "sequence: expected a positive"),
        ({"action": "continue", "run_id": "r1", "sequence": True}, "sequence: expected a positive"),
        ({"source": "aws.events", "detail-type": "Object Created"}, "detail-type: expected"),
        ({"source": "aws.events", "detail-type": "Scheduled Event"}, "id: missing"),
    ],
)
def test_bad_events_are_refused_with_a_message_naming_the_field(event: Any, message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message.replace("(", r"\(")):
        parse_trigger(event)


def test_continuation_fixture_is_a_continuation_trigger() -> None:
    trigger = parse_trigger(_fixture("sync_continuation.json"))
    assert trigger == ContinuationTrigger(run_id="20261122T090000Z-1a2b3c4d", sequence=1)
