"""DLQ inspect and redrive over fakes: what is listed, what is redriven, what is deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.dlq import (
    DlqError,
    Invocation,
    QueueMessage,
    describe,
    inspect_queue,
    judge,
    redrive_queue,
)

EVENTS = Path(__file__).resolve().parents[3] / "events"
SYNC = "vulnstats-dev-sync"
LAMBDA_FAILURE = {
    "RequestID": "8f5c6a0e-0000-4000-8000-000000000001",
    "ErrorCode": "200",
    "ErrorMessage": "table vulnstats-dev-StateTable unreachable",
}


def _event(name: str) -> str:
    return (EVENTS / name).read_text()


def _message(number: int, body: str, attributes: dict[str, str] | None = None) -> QueueMessage:
    return QueueMessage(
        message_id=f"m-{number}",
        receipt_handle=f"r-{number}",
        body=body,
        attributes=LAMBDA_FAILURE if attributes is None else attributes,
        receive_count=1,
    )


@dataclass
class FakeQueue:
    """SQS in memory: received messages are hidden until released or deleted."""

    messages: list[QueueMessage]
    hidden: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    visibilities: list[int] = field(default_factory=list)

    def receive(self, max_messages: int, visibility_timeout_s: int) -> list[QueueMessage]:
        self.visibilities.append(visibility_timeout_s)
        visible = [m for m in self.messages if m.message_id not in self.hidden][:max_messages]
        self.hidden.update(m.message_id for m in visible)
        return visible

    def release(self, message: QueueMessage) -> None:
        self.released.append(message.message_id)
        self.hidden.discard(message.message_id)

    def delete(self, message: QueueMessage) -> None:
        self.deleted.append(message.message_id)
        self.hidden.discard(message.message_id)
        self.messages = [m for m in self.messages if m.message_id != message.message_id]

    @property
    def ids(self) -> list[str]:
        return [m.message_id for m in self.messages]


@dataclass
class FakeSync:
    """The sync function: answers from a table keyed by the event body, records every call."""

    answers: dict[str, Invocation]
    calls: list[bytes] = field(default_factory=list)

    def invoke(self, payload: bytes) -> Invocation:
        self.calls.append(payload)
        return self.answers[payload.decode()]


def _ok(status: str = "succeeded") -> Invocation:
    return Invocation(None, json.dumps({"status": status, "run_id": "r1", "message": ""}).encode())


# ------------------------------------------------------------------ describe
def test_a_lambda_dead_letter_shows_its_reason_and_scheduled_event_id() -> None:
    # given a scheduled event Lambda gave up on
    message = _message(1, _event("sync_scheduled.json"))
    # when it is described
    report = describe(message, SYNC)
    # then the reason, the request id and the event id are shown, and it can be redriven
    assert report.source == "lambda"
    assert report.error_message == LAMBDA_FAILURE["ErrorMessage"]
    assert report.request_id == LAMBDA_FAILURE["RequestID"]
    assert "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa" in report.event
    assert report.redrivable


def test_a_continuation_is_summarised_by_its_run_and_sequence() -> None:
    report = describe(_message(1, _event("sync_continuation.json")), SYNC)
    assert report.event == "continuation 1 of run 20261122T090000Z-1a2b3c4d"
    assert report.redrivable


def test_a_warmer_schedule_event_is_listed_but_never_redriven() -> None:
    # given a warmer schedule event EventBridge could not deliver
    attributes = {
        "RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/vulnstats-dev-warm-offpeak",
        "TARGET_ARN": "arn:aws:lambda:us-east-1:123456789012:function:vulnstats-dev-warmer",
        "ERROR_CODE": "SDK_CLIENT_ERROR",
        "ERROR_MESSAGE": "throttled",
    }
    report = describe(_message(1, _event("warmer_scheduled.json"), attributes), SYNC)
    # then its reason shows, and it is not for the sync
    assert report.source == "eventbridge"
    assert report.error_code == "SDK_CLIENT_ERROR"
    assert not report.redrivable
    assert "vulnstats-dev-warmer" in str(report.not_redrivable_because)


def test_a_sync_schedule_event_eventbridge_could_not_deliver_is_redrivable() -> None:
    attributes = {
        "TARGET_ARN": f"arn:aws:lambda:us-east-1:123456789012:function:{SYNC}",
        "ERROR_CODE": "NO_PERMISSIONS",
        "ERROR_MESSAGE": "not allowed",
    }
    report = describe(_message(1, _event("sync_scheduled.json"), attributes), SYNC)
    assert report.redrivable
    assert report.error_message == "not allowed"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json at all", "not a sync function event"),
        ('{"foo": 1}', "not a sync function event"),
        (
            json.dumps({"Type": "Notification", "TopicArn": "arn:t", "Subject": "ALARM"}),
            "undeliverable alarm notification",
        ),
    ],
)
def test_anything_that_is_not_a_sync_event_is_not_redrivable(body: str, why: str) -> None:
    report = describe(_message(1, body, {}), SYNC)
    assert not report.redrivable
    assert why in str(report.not_redrivable_because)


# ------------------------------------------------------------------ judge
@pytest.mark.parametrize(
    ("invocation", "succeeded", "says"),
    [
        (_ok("succeeded"), True, "succeeded"),
        (_ok("continuing"), True, "continuing"),
        (_ok("failed"), False, "failed"),
        (_ok("refused"), False, "refused"),
        (_ok("stale"), False, "stale"),
        (_ok("duplicate"), False, "duplicate"),
        (Invocation("Unhandled", b'{"errorMessage": "boom"}'), False, "boom"),
        (Invocation(None, b"not json"), False, "not JSON"),
        (Invocation(None, b'{"no": "status"}'), False, "no status"),
    ],
)
def test_only_a_completed_or_continuing_run_counts_as_success(
    invocation: Invocation, succeeded: bool, says: str
) -> None:
    ok, detail = judge(invocation)
    assert ok is succeeded
    assert says in detail


# ------------------------------------------------------------------ inspect
def test_inspect_lists_every_message_and_deletes_none() -> None:
    # given three dead letters
    queue = FakeQueue([_message(n, _event("sync_scheduled.json")) for n in range(3)])
    # when inspected
    inspection = inspect_queue(queue, SYNC, max_messages=10)
    # then all three are listed, none deleted, all visible again, with a short visibility
    assert [m.message_id for m in inspection.messages] == ["m-0", "m-1", "m-2"]
    assert queue.deleted == []
    assert queue.hidden == set()
    assert max(queue.visibilities) <= 60
    assert not inspection.limit_reached


def test_inspect_stops_at_the_limit_and_says_so() -> None:
    queue = FakeQueue([_message(n, _event("sync_scheduled.json")) for n in range(25)])
    inspection = inspect_queue(queue, SYNC, max_messages=12)
    assert len(inspection.messages) == 12
    assert inspection.limit_reached
    assert queue.hidden == set()


def test_a_limit_below_one_is_refused_with_the_flag_named() -> None:
    with pytest.raises(DlqError, match="--max-messages"):
        inspect_queue(FakeQueue([]), SYNC, max_messages=0)


# ------------------------------------------------------------------ redrive
def test_redrive_deletes_a_message_only_after_its_run_succeeded() -> None:
    # given a scheduled event that will now succeed and a continuation that will fail again
    scheduled, continuation = _event("sync_scheduled.json"), _event("sync_continuation.json")
    queue = FakeQueue([_message(1, scheduled), _message(2, continuation)])
    sync = FakeSync(
        {scheduled: _ok(), continuation: Invocation("Unhandled", b'{"errorMessage": "still down"}')}
    )
    # when redriven
    report = redrive_queue(queue, sync, SYNC, max_messages=10)
    # then the bodies were re-submitted as they were, the success deleted, the failure kept
    assert sync.calls == [scheduled.encode(), continuation.encode()]
    assert queue.deleted == ["m-1"]
    assert queue.ids == ["m-2"]
    assert queue.hidden == set()
    assert [o.result for o in report.outcomes] == ["redriven", "failed"]
    assert "still down" in report.outcomes[1].detail
    assert not report.ok
    # and each message stayed hidden for longer than one sync invocation can last
    assert min(queue.visibilities) > 900


def test_redrive_skips_what_is_not_a_sync_event_and_keeps_it() -> None:
    queue = FakeQueue([_message(1, '{"foo": 1}', {})])
    sync = FakeSync({})
    report = redrive_queue(queue, sync, SYNC, max_messages=10)
    assert sync.calls == []
    assert queue.ids == ["m-1"]
    assert report.count("skipped") == 1
    assert report.ok


def test_a_refused_run_keeps_its_message_for_a_later_redrive() -> None:
    body = _event("sync_manual.json")
    queue = FakeQueue([_message(1, body)])
    report = redrive_queue(queue, FakeSync({body: _ok("refused")}), SYNC, max_messages=10)
    assert queue.ids == ["m-1"]
    assert report.outcomes[0].result == "failed"
    assert "refused" in report.outcomes[0].detail


def test_redrive_is_bounded_by_the_message_limit() -> None:
    body = _event("sync_scheduled.json")
    queue = FakeQueue([_message(n, body) for n in range(5)])
    sync = FakeSync({body: _ok()})
    report = redrive_queue(queue, sync, SYNC, max_messages=2)
    assert len(sync.calls) == 2
    assert queue.ids == ["m-2", "m-3", "m-4"]
    assert report.limit_reached


def test_a_failed_message_is_not_retried_within_one_redrive() -> None:
    # given one message whose run keeps failing
    body = _event("sync_scheduled.json")
    queue = FakeQueue([_message(1, body)])
    sync = FakeSync({body: _ok("failed")})
    # when redriven with room for many messages
    redrive_queue(queue, sync, SYNC, max_messages=50)
    # then it was tried once and is visible again afterwards
    assert len(sync.calls) == 1
    assert queue.ids == ["m-1"]
    assert queue.hidden == set()


def test_dry_run_invokes_nothing_and_deletes_nothing() -> None:
    body = _event("sync_scheduled.json")
    queue = FakeQueue([_message(1, body), _message(2, "junk", {})])
    sync = FakeSync({})
    report = redrive_queue(queue, sync, SYNC, max_messages=10, dry_run=True)
    assert sync.calls == []
    assert queue.deleted == []
    assert [o.result for o in report.outcomes] == ["dry-run", "skipped"]
