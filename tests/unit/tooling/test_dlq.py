"""DLQ inspect and redrive over fakes: what is listed, what is redriven, what is deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.dlq import (
    DlqError,
    QueueMessage,
    describe,
    inspect_queue,
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
class FakeRequests:
    """The SyncRequests queue: records every body sent back; ``failure`` makes sends fail."""

    sent: list[str] = field(default_factory=list)
    failure: DlqError | None = None

    def send(self, body: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append(body)


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
        ("not json at all", "not a sync request"),
        ('{"foo": 1}', "not a sync request"),
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
def test_redrive_puts_each_sync_request_back_on_the_queue_then_deletes_it() -> None:
    # given a scheduled event and a continuation that failed maxReceiveCount times
    scheduled, continuation = _event("sync_scheduled.json"), _event("sync_continuation.json")
    queue = FakeQueue([_message(1, scheduled, {}), _message(2, continuation, {})])
    requests = FakeRequests()
    # when redriven
    report = redrive_queue(queue, requests, SYNC, max_messages=10)
    # then both bodies are back on the SyncRequests queue unchanged, and gone from the DLQ
    assert requests.sent == [scheduled, continuation]
    assert queue.ids == []
    assert [o.report.source for o in report.outcomes] == ["queue", "queue"]
    assert [o.result for o in report.outcomes] == ["redriven", "redriven"]
    assert report.ok


def test_a_request_that_cannot_be_sent_back_stays_in_the_dlq_and_says_why() -> None:
    body = _event("sync_manual.json")
    queue = FakeQueue([_message(1, body, {})])
    requests = FakeRequests(failure=DlqError("cannot send: AccessDenied"))
    report = redrive_queue(queue, requests, SYNC, max_messages=10)
    assert queue.ids == ["m-1"]
    assert queue.hidden == set()
    assert report.outcomes[0].result == "failed"
    assert "AccessDenied" in report.outcomes[0].detail
    assert not report.ok


def test_redrive_skips_what_is_not_a_sync_request_and_keeps_it() -> None:
    queue = FakeQueue([_message(1, '{"action": "explode"}', {}), _message(2, "junk", {})])
    requests = FakeRequests()
    report = redrive_queue(queue, requests, SYNC, max_messages=10)
    assert requests.sent == []
    assert queue.ids == ["m-1", "m-2"]
    assert report.count("skipped") == 2
    assert "message is not a sync trigger" in report.outcomes[0].detail
    assert report.ok


def test_a_schedule_event_eventbridge_could_not_queue_is_redrivable() -> None:
    arn = "arn:aws:sqs:us-east-1:123456789012:vulnstats-dev-sync-requests"
    attributes = {"TARGET_ARN": arn, "ERROR_CODE": "SQSKMSAccessDenied"}
    message = _message(1, _event("sync_scheduled.json"), attributes)
    report = describe(message, SYNC, requests_queue_arn=arn)
    assert (report.source, report.redrivable) == ("eventbridge", True)


def test_redrive_is_bounded_by_the_message_limit() -> None:
    body = _event("sync_scheduled.json")
    queue = FakeQueue([_message(n, body) for n in range(5)])
    requests = FakeRequests()
    report = redrive_queue(queue, requests, SYNC, max_messages=2)
    assert len(requests.sent) == 2
    assert queue.ids == ["m-2", "m-3", "m-4"]
    assert report.limit_reached


def test_dry_run_sends_nothing_and_deletes_nothing() -> None:
    body = _event("sync_scheduled.json")
    queue = FakeQueue([_message(1, body), _message(2, "junk", {})])
    requests = FakeRequests()
    report = redrive_queue(queue, requests, SYNC, max_messages=10, dry_run=True)
    assert requests.sent == []
    assert queue.deleted == []
    assert [o.result for o in report.outcomes] == ["dry-run", "skipped"]
