"""The SyncRequests consumer: partial batch failures, deadline-bound visibility, coalescing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from fakes.stores import MemoryRuns

from vulnstats.consumer import ConsumerPolicy, RequestConsumer
from vulnstats.errors import StorageError
from vulnstats.triggers import ManualTrigger, manual_event, parse_trigger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from vulnstats.queue import SyncQueue
    from vulnstats.triggers import Trigger

NOW = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
POLICY = ConsumerPolicy(deadline_margin_seconds=30.0, retry_seconds=960.0)


@dataclass
class FakeQueue:
    sent: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    hidden: list[tuple[str, float]] = field(default_factory=list)

    def send(self, event: Mapping[str, Any], *, delay_seconds: float = 0) -> str:
        self.sent.append((dict(event), delay_seconds))
        return f"m{len(self.sent)}"

    def hide(self, receipt_handle: str, seconds: float) -> None:
        self.hidden.append((receipt_handle, seconds))


def _record(body: str, number: int = 1) -> dict[str, Any]:
    return {
        "messageId": f"id-{number}",
        "receiptHandle": f"rh-{number}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
    }


def _world() -> tuple[FakeQueue, MemoryRuns, list[Trigger]]:
    return FakeQueue(), MemoryRuns(), []


def _consumer(
    answer: Mapping[str, Any], queue: FakeQueue, runs: MemoryRuns, seen: list[Trigger]
) -> RequestConsumer:
    def run(trigger: Trigger) -> Mapping[str, Any]:
        seen.append(trigger)
        return answer

    return RequestConsumer(
        queue=cast("SyncQueue", queue),
        runs=runs,
        run=run,
        remaining_seconds=lambda: 899.0,
        policy=POLICY,
        clock=lambda: NOW,
        run_id_factory=lambda now: "run-new",
    )


def test_a_message_that_is_not_a_trigger_fails_alone_and_the_next_one_runs() -> None:
    queue, runs, seen = _world()
    consumer = _consumer({"status": "succeeded"}, queue, runs, seen)
    records = [
        _record("{not json", 1),
        _record(json.dumps({"action": "explode"}), 2),
        _record("x" * 9000, 3),
        _record(json.dumps(manual_event("ok")), 4),
    ]
    answer = consumer.handle(records)
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"id-{n}"} for n in (1, 2, 3)]}
    assert seen == [ManualTrigger("ok")]
    # each failure comes back within seconds, so it reaches the DLQ after maxReceiveCount soon
    assert queue.hidden[:3] == [(f"rh-{n}", POLICY.reject_retry_seconds) for n in (1, 2, 3)]


def test_the_message_in_hand_stays_hidden_until_the_deadline_plus_the_margin() -> None:
    queue, runs, seen = _world()
    consumer = _consumer({"status": "continuing"}, queue, runs, seen)
    assert consumer.handle([_record(json.dumps(manual_event("go")))])["batchItemFailures"] == []
    assert queue.hidden == [("rh-1", 899.0 + 30.0)]


def test_a_duplicate_in_progress_is_received_again_after_its_deadline() -> None:
    queue, runs, seen = _world()
    consumer = _consumer({"status": "duplicate"}, queue, runs, seen)
    body = json.dumps({"action": "continue", "run_id": "r1", "sequence": 2})
    assert consumer.handle([_record(body)])["batchItemFailures"] == [{"itemIdentifier": "id-1"}]
    assert queue.hidden[-1] == ("rh-1", 960.0)


def test_requests_refused_by_a_live_run_become_one_deferred_message_for_the_next_run() -> None:
    queue, runs, seen = _world()
    refused = {"status": "refused", "run_id": "run-live", "retry_after": 45.0}
    consumer = _consumer(refused, queue, runs, seen)
    # when a person's request and then two more arrive while run-live holds the lock
    bodies = [
        json.dumps(manual_event("first", "run-next")),
        json.dumps(manual_event("second")),
        json.dumps(manual_event("third", "run-other")),
    ]
    answers = [consumer.handle([_record(body, n)]) for n, body in enumerate(bodies)]
    # then none fails, run-next is named, and only its own message is sent again (deferred)
    assert all(a["batchItemFailures"] == [] for a in answers)
    assert runs.next_run(NOW) == "run-next"
    assert [(parse_trigger(event), delay) for event, delay in queue.sent] == [
        (ManualTrigger("first", "run-next"), 45.0)
    ]


def test_a_refused_schedule_tick_is_dropped_the_live_run_carries_it() -> None:
    queue, runs, seen = _world()
    consumer = _consumer({"status": "refused", "run_id": "run-live"}, queue, runs, seen)
    body = json.dumps(
        {"id": "e1", "detail-type": "Scheduled Event", "source": "aws.events", "time": "t"}
    )
    assert consumer.handle([_record(body)])["batchItemFailures"] == []
    assert queue.sent == []


def test_a_run_that_ends_queues_the_promised_next_run_at_once() -> None:
    queue, runs, seen = _world()
    runs.claim_next("run-next", NOW, 3600, "the person's reason")
    consumer = _consumer({"status": "succeeded", "run_id": "run-live"}, queue, runs, seen)
    consumer.handle(
        [_record(json.dumps({"action": "continue", "run_id": "run-live", "sequence": 3}))]
    )
    # with the reason the person gave, whichever message starts the run
    assert [parse_trigger(event) for event, _ in queue.sent] == [
        ManualTrigger("the person's reason", "run-next")
    ]


def test_a_run_that_raises_fails_its_message_and_brings_it_back_soon() -> None:
    queue, runs, _ = _world()

    def broken(trigger: Trigger) -> Mapping[str, Any]:
        raise StorageError("table t unreachable", resource="t", operation="PutItem")

    consumer = RequestConsumer(
        queue=cast("SyncQueue", queue),
        runs=runs,
        run=broken,
        remaining_seconds=lambda: 899.0,
        policy=POLICY,
    )
    answer = consumer.handle([_record(json.dumps(manual_event("x")))])
    assert answer["batchItemFailures"] == [{"itemIdentifier": "id-1"}]
    assert queue.hidden[-1] == ("rh-1", POLICY.error_retry_seconds)
