"""The SyncRequests consumer: one SQS batch in, the sync run per message, partial failures out.

The policy (docs/sync.md, "Requests through a queue"): a message that is not a trigger fails
once and reaches the dead-letter queue after maxReceiveCount; a message being handled stays
invisible until the invocation's deadline plus a margin, so a dead worker's message comes back
soon after it died; a request refused because another run is live is coalesced into the next
run, whose one message is deferred (sent again with a delay), never failed into the DLQ, and
sent at once when the live run ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from vulnstats.sync import new_run_id
from vulnstats.triggers import (
    DEFAULT_REASON,
    InvalidTriggerError,
    InvocationStatus,
    ManualTrigger,
    parse_message,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from vulnstats.ports import RunStore
    from vulnstats.queue import SyncQueue
    from vulnstats.triggers import Trigger

__all__ = ["ConsumerPolicy", "RequestConsumer"]

_LOG: Final = logging.getLogger(__name__)
# A run ended with one of these: the lock is free for the next run.
_ENDED: Final = frozenset({InvocationStatus.SUCCEEDED, InvocationStatus.FAILED})


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    """Timings of the consumer (the sync function's settings fill it)."""

    deadline_margin_seconds: float = 30.0  # a message in hand stays hidden to deadline + this
    retry_seconds: float = 960.0  # a duplicate in progress: try again after its deadline
    next_claim_seconds: int = 3600  # how long a promised next run stays named without news
    # A deferred request looks again after the live run's lease, at most this long: the run's
    # end queues the next run at once anyway; this is the safety net when that message is lost.
    max_defer_seconds: float = 60.0
    # A message that is not a trigger is received again this soon (not after the queue's 90-min
    # visibility timeout), so it reaches the DLQ after maxReceiveCount within minutes.
    reject_retry_seconds: float = 5.0
    # A request whose run raised (the table unreachable: nothing could be recorded) is received
    # again after this long, and reaches the DLQ after maxReceiveCount failures.
    error_retry_seconds: float = 60.0


class RequestConsumer:
    """Handles the records of one SQS event; ``run`` handles one trigger (the sync engine)."""

    def __init__(
        self,
        *,
        queue: SyncQueue,
        runs: RunStore,
        run: Callable[[Trigger], Mapping[str, Any]],
        remaining_seconds: Callable[[], float],
        policy: ConsumerPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        run_id_factory: Callable[[datetime], str] = new_run_id,
        logger: Any = None,
    ) -> None:
        """Wire the queue, the run store and the trigger runner of this invocation.

        ``logger`` is the function's Powertools Logger (structured lines with their extras);
        None logs through the standard library.
        """
        self._queue = queue
        self._runs = runs
        self._run = run
        self._remaining = remaining_seconds
        self._policy = policy or ConsumerPolicy()
        self._clock = clock
        self._new_run_id = run_id_factory
        self._log = _LOG if logger is None else logger

    def handle(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The partial batch response: the ids of the messages to receive again."""
        failures = [
            {"itemIdentifier": str(record.get("messageId", ""))}
            for record in records
            if not self._handle_one(record)
        ]
        return {"batchItemFailures": failures}

    def _handle_one(self, record: Mapping[str, Any]) -> bool:
        message_id = str(record.get("messageId", ""))
        attributes = record.get("attributes") or {}
        context = {
            "message_id": message_id,
            "receive_count": attributes.get("ApproximateReceiveCount"),
        }
        receipt = str(record.get("receiptHandle", ""))
        body = record.get("body")
        try:
            trigger = parse_message(body if isinstance(body, str) else "")
        except InvalidTriggerError as exc:
            # Failed, not dropped: after maxReceiveCount receives SQS moves it to the DLQ, where
            # the DLQ tool shows it with this reason; the messages behind it go on meanwhile.
            self._log.error("message is not a sync trigger", extra={**context, "reason": str(exc)})
            self._queue.hide(receipt, self._policy.reject_retry_seconds)
            return False
        # Lambda kills the invocation at its deadline: if it dies sooner, the message is back
        # then plus the margin, and the lease and idempotency record have expired by then.
        self._queue.hide(receipt, self._remaining() + self._policy.deadline_margin_seconds)
        try:
            answer = self._run(trigger)
        # Any error (ours, the idempotency layer's, botocore's): logged with its traceback and
        # reported as this message's failure, so it is retried soon and dead-lettered after
        # maxReceiveCount, instead of failing the invocation and waiting out its visibility.
        except Exception as exc:  # noqa: BLE001
            self._log.exception(
                "sync request failed; it is received again",
                extra={**context, "error": f"{type(exc).__name__}: {exc}"},
            )
            self._queue.hide(receipt, self._policy.error_retry_seconds)
            return False
        status = answer.get("status")
        if status == InvocationStatus.DUPLICATE:
            self._log.info("message deferred: the same trigger is being handled", extra=context)
            self._queue.hide(receipt, self._policy.retry_seconds)
            return False
        if status == InvocationStatus.REFUSED and isinstance(trigger, ManualTrigger):
            self._defer(trigger, answer, context)
        elif status in _ENDED:
            self._start_next(answer, context)
        return True

    def _start_next(self, answer: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        """A run ended and released the lock: queue the next run now, not after its deferral."""
        request = self._runs.next_request(self._clock())
        if request is None:
            return
        named, reason = request
        self._queue.send(ManualTrigger(reason or DEFAULT_REASON, named).to_event())
        self._log.info("next run queued", extra={**context, "run_id": named})

    def _defer(
        self, trigger: ManualTrigger, answer: Mapping[str, Any], context: Mapping[str, Any]
    ) -> None:
        """Coalesce a person's request into the next run while another run is live."""
        now = self._clock()
        wanted = trigger.run_id or self._new_run_id(now)
        named = self._runs.claim_next(wanted, now, self._policy.next_claim_seconds, trigger.reason)
        if named != wanted:
            self._log.info(
                "request coalesced into the next run",
                extra={**context, "run_id": named, "live_run": answer.get("run_id")},
            )
            return
        delay = min(
            float(answer.get("retry_after") or self._policy.max_defer_seconds),
            self._policy.max_defer_seconds,
        )
        self._queue.send(ManualTrigger(trigger.reason, wanted).to_event(), delay_seconds=delay)
        self._log.info(
            "request deferred until the live run ends",
            extra={**context, "run_id": wanted, "live_run": answer.get("run_id"), "delay": delay},
        )
