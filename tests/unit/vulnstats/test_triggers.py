"""The sync function's contract: which events start it, their keys, and which run a start takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vulnstats.ports import RunRecord, RunStatus, resumable_run
from vulnstats.triggers import (
    ContinuationTrigger,
    InvalidTriggerError,
    ManualTrigger,
    ScheduledTrigger,
    continuation_event,
    manual_event,
    parse_trigger,
)

EVENTS = Path(__file__).resolve().parents[3] / "events"
RULE = "arn:aws:events:eu-west-1:123456789012:rule/vulnstats-dev-SyncSchedule"
NOW = datetime(2026, 11, 22, 9, tzinfo=UTC)


def _fixture(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_scheduled_fixture_is_a_scheduled_trigger_keyed_by_event_id() -> None:
    # given the EventBridge fixture / when parsed
    trigger = parse_trigger(_fixture("sync_scheduled.json"))
    # then the event id is kept, so a replayed delivery can be recognised
    assert isinstance(trigger, ScheduledTrigger)
    assert trigger.event_id == "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"
    assert trigger.time == "2026-11-22T09:00:00Z"
    assert trigger.idempotency_key == "scheduled#53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"


def test_manual_fixture_keeps_the_reason_and_is_never_deduplicated() -> None:
    trigger = parse_trigger(_fixture("sync_manual.json"))
    assert isinstance(trigger, ManualTrigger)
    assert trigger.reason == "manual run after rotating the Vanta credentials"
    assert trigger.idempotency_key is None


def test_continuation_fixture_is_keyed_by_run_and_sequence() -> None:
    trigger = parse_trigger(_fixture("sync_continuation.json"))
    assert trigger == ContinuationTrigger(run_id="20261122T090000Z-1a2b3c4d", sequence=1)
    assert trigger.idempotency_key == "continue#20261122T090000Z-1a2b3c4d#1"


def test_manual_without_reason_gets_a_default() -> None:
    assert parse_trigger({"action": "sync"}) == ManualTrigger(reason="manual start")


@pytest.mark.parametrize(
    "event",
    [
        manual_event(),
        manual_event("  re-sync after the outage  "),
        manual_event("API", run_id="20261122T090000Z-0a1b2c3d"),
        continuation_event("20261122T090000Z-0a1b2c3d", 7),
    ],
)
def test_every_built_event_parses_back_to_what_it_says(event: dict[str, Any]) -> None:
    # given an event built by the contract / when the sync function parses it
    trigger = parse_trigger(event)
    # then building it again gives the same event: producers and the parser agree
    assert isinstance(trigger, ManualTrigger | ContinuationTrigger)
    assert trigger.to_event() == event


def test_built_events_are_normalised_as_the_sync_function_reads_them() -> None:
    assert manual_event("  outage  ") == {"action": "sync", "reason": "outage"}
    assert manual_event("", run_id="r1") == {
        "action": "sync",
        "reason": "manual start",
        "run_id": "r1",
    }


def test_two_deliveries_of_one_event_share_a_key_and_two_continuations_do_not() -> None:
    scheduled = _fixture("sync_scheduled.json")
    assert (
        parse_trigger(scheduled).idempotency_key == parse_trigger(dict(scheduled)).idempotency_key
    )
    first = parse_trigger(continuation_event("r1", 1)).idempotency_key
    second = parse_trigger(continuation_event("r1", 2)).idempotency_key
    assert first != second


def test_a_builder_refuses_what_the_sync_function_would_refuse() -> None:
    with pytest.raises(InvalidTriggerError, match="run_id: expected"):
        manual_event("x", run_id="../etc")
    with pytest.raises(InvalidTriggerError, match="sequence: expected a positive"):
        continuation_event("r1", 0)


def test_the_dead_letter_tool_can_say_what_each_event_was() -> None:
    scheduled = parse_trigger(_fixture("sync_scheduled.json") | {"resources": [RULE]})
    assert scheduled.describe().endswith("(rule vulnstats-dev-SyncSchedule)")
    assert parse_trigger(manual_event("why", run_id="r9")).describe() == (
        "manual start: 'why' (run r9)"
    )
    assert parse_trigger(continuation_event("r9", 3)).describe() == "continuation 3 of run r9"


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


def _run(status: RunStatus) -> RunRecord:
    return RunRecord(
        run_id="20261122T080000Z-00000001",
        status=status,
        trigger="scheduled",
        started_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.FAILED, RunStatus.ABANDONED])
def test_a_start_carries_on_the_latest_run_unless_it_succeeded(status: RunStatus) -> None:
    latest = _run(status)
    assert resumable_run(latest) is latest


@pytest.mark.parametrize("latest", [None, _run(RunStatus.SUCCEEDED)])
def test_a_start_after_a_success_or_on_a_new_table_begins_a_new_run(
    latest: RunRecord | None,
) -> None:
    assert resumable_run(latest) is None
