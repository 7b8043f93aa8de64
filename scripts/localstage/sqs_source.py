"""SQS event sources of the template, polled as Lambda's event source mapping polls them.

One poller per SQS event of a function (`Type: SQS`): it long-polls the emulated queue (moto),
invokes the function synchronously with the SQS event shape, deletes what succeeded and leaves
the rest to come back after their visibility timeout. What it honours, as documented for Lambda:

- BatchSize: at most that many records per invocation.
- FunctionResponseTypes [ReportBatchItemFailures]: only the listed `batchItemFailures` stay in
  the queue; an answer naming an id that was not in the batch, or a function error, fails the
  whole batch.
- ScalingConfig.MaximumConcurrency: at most that many invocations in flight (otherwise the
  function's reserved concurrency, otherwise 5, Lambda's starting number of pollers).
- The queue's visibility timeout and ChangeMessageVisibility by the function: a failed message
  is received again only once its visibility ends (moto keeps the clock, as SQS does).
- The queue's redrive policy: moto moves a message received more than maxReceiveCount times to
  the dead-letter queue, as SQS does; the poller never deletes a failed message itself.

Differences from Lambda's poller (docs/sync.md lists them for users):
- Polls with 1 s long polls (Lambda: 20 s) so the stage stops at once; no batching window.
- A throttled invocation (reserved concurrency exhausted) leaves the batch to come back after
  its visibility timeout, as on Lambda, but the poller does not scale its number of pollers up
  or down with the backlog: it always runs the maximum concurrency.
- No event filtering (FilterCriteria), no FIFO ordering by message group, no metrics of the
  mapping itself (OnFailure destinations do not exist for SQS mappings on Lambda either).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from localstage.runtime import LocalRuntimeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from localstage.runtime import InvokeResult
    from localstage.spec import SqsSourceSpec

__all__ = [
    "DEFAULT_CONCURRENCY",
    "QueueTarget",
    "SqsEventSource",
    "SqsSources",
    "concurrency_of",
    "sqs_event",
]

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 5  # Lambda starts with five concurrent batches
_WAIT_SECONDS: Final = 1
_IDLE_BACKOFF_SECONDS: Final = 0.5


class Invoker(Protocol):
    """What a poller needs from the runtime (LocalRuntime is one)."""

    def invoke(self, name: str, payload: bytes) -> InvokeResult:
        """Invoke synchronously (RequestResponse)."""
        ...


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """The queue of one event source, as the poller reaches it."""

    url: str
    arn: str
    region: str


def sqs_event(messages: Sequence[Mapping[str, Any]], queue: QueueTarget) -> dict[str, Any]:
    """The event Lambda sends for a batch of received messages (the `Records` of `aws:sqs`)."""
    records = []
    for message in messages:
        body = str(message.get("Body", ""))
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in dict(message.get("MessageAttributes", {})).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": queue.region,
            }
        )
    return {"Records": records}


def _failed_ids(result: InvokeResult, batch_ids: set[str], report_failures: bool) -> set[str]:
    """The message ids to leave in the queue after one invocation."""
    if result.function_error:
        return batch_ids
    if not report_failures:
        return set()
    try:
        answer = json.loads(result.payload or b"null")
    except ValueError:
        answer = {"batchItemFailures": "not JSON"}  # fails the whole batch, as on Lambda
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return batch_ids
    identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
    # Lambda: an empty, missing or unknown identifier fails the whole batch.
    if not all(i in batch_ids for i in identifiers):
        return batch_ids
    return {str(identifier) for identifier in identifiers}


class SqsEventSource:
    """Polls one queue for one function with a fixed number of poller threads."""

    def __init__(
        self,
        spec: SqsSourceSpec,
        runtime: Invoker,
        queue: QueueTarget,
        *,
        sqs_client: Callable[[], Any],
        concurrency: int,
    ) -> None:
        """``sqs_client`` makes one client per poller thread (botocore clients are not shared)."""
        self.spec = spec
        self.queue = queue
        self._runtime = runtime
        self._client_factory = sqs_client
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.invocations = 0
        self.deleted = 0

    def start(self) -> None:
        """Start the pollers (no-op for a disabled event)."""
        if not self.spec.enabled:
            return
        for number in range(self.concurrency):
            thread = threading.Thread(
                target=self._poll,
                name=f"sqs-{self.spec.function}-{self.spec.name}-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop polling; invocations in flight finish first (their messages stay consistent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def _poll(self) -> None:
        client = self._client_factory()
        while not self._stop.is_set():
            try:
                messages = client.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=min(10, self.spec.batch_size),
                    WaitTimeSeconds=_WAIT_SECONDS,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except (BotoCoreError, ClientError) as exc:
                logger.warning("polling %s failed: %s", self.queue.url, exc)
                self._stop.wait(_IDLE_BACKOFF_SECONDS)
                continue
            if messages:
                self._deliver(client, messages)

    def _deliver(self, client: Any, messages: list[dict[str, Any]]) -> None:
        batch_ids = {str(message["MessageId"]) for message in messages}
        payload = json.dumps(sqs_event(messages, self.queue)).encode()
        try:
            result = self._runtime.invoke(self.spec.function, payload)
        except LocalRuntimeError as exc:
            # Throttled or gone: the batch comes back after its visibility timeout, as on Lambda.
            logger.warning("invoking %s for %s failed: %s", self.spec.function, self.queue.url, exc)
            return
        failed = _failed_ids(result, batch_ids, self.spec.report_batch_item_failures)
        done = [m for m in messages if str(m["MessageId"]) not in failed]
        with self._lock:
            self.invocations += 1
        if done:
            try:
                client.delete_message_batch(
                    QueueUrl=self.queue.url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(done)
                    ],
                )
            except (BotoCoreError, ClientError) as exc:
                logger.warning("deleting from %s failed: %s", self.queue.url, exc)
                return
            with self._lock:
                self.deleted += len(done)


class SqsSources:
    """Every SQS event source of a stack, started and stopped together."""

    def __init__(self, sources: Sequence[SqsEventSource]) -> None:
        """Own these pollers."""
        self.sources = list(sources)

    def start(self) -> None:
        """Start every poller."""
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        """Stop every poller."""
        for source in self.sources:
            source.stop()

    def of(self, function: str) -> list[SqsEventSource]:
        """The sources of one function (logical id)."""
        return [source for source in self.sources if source.spec.function == function]


def concurrency_of(spec: SqsSourceSpec, reserved: int | None) -> int:
    """How many invocations a source keeps in flight: its maximum, within the reservation."""
    wanted = spec.maximum_concurrency or DEFAULT_CONCURRENCY
    return max(1, min(wanted, reserved)) if reserved else wanted
