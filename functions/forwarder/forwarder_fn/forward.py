"""Forwarding: points of a log batch to Datadog behind retry and a breaker, failures kept."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from forwarder_fn.datadog import DatadogAuthError, DatadogRejectedError
from forwarder_fn.series import (
    MAX_PAST_S,
    decode_awslogs,
    extract_points,
    payloads,
    points_in,
    series_of,
)
from lambdakit.breaker import CircuitOpenError
from lambdakit.retry import RetryError
from vulnstats.metrics import (
    FORWARDER_BREAKER_OPEN,
    FORWARDER_POINTS_DEAD_LETTERED,
    FORWARDER_POINTS_DROPPED,
    FORWARDER_POINTS_SENT,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from lambdakit.breaker import CircuitBreaker
    from lambdakit.metrics import MetricSink
    from lambdakit.retry import Deadline, Retrier

__all__ = ["DeadLetters", "ForwardOutcome", "Forwarder", "Submitter"]

_LOG: Final = logging.getLogger(__name__)
_DLQ_PART_BYTES: Final = 200_000


class Submitter(Protocol):
    """Posts one series payload (``forwarder_fn.datadog.DatadogClient``)."""

    def submit(self, payload: bytes) -> None:
        """Deliver the payload or raise a ``DatadogError``."""
        ...


class DeadLetters(Protocol):
    """The forwarder's dead-letter queue: undelivered series wait there for a replay."""

    def send(self, body: str) -> None:
        """Keep one message."""
        ...

    def receive(self, max_messages: int) -> list[tuple[str, str]]:
        """Up to ``max_messages`` (receipt, body) pairs, hidden from others while replayed."""
        ...

    def delete(self, receipt: str) -> None:
        """Forget a message that was delivered."""
        ...


@dataclass(slots=True)
class ForwardOutcome:
    """What one invocation did with the points it was given."""

    sent: int = 0
    dropped: int = 0  # malformed EMF, outside Datadog's time window, or refused as invalid
    dead_lettered: int = 0  # kept in the DLQ for a replay
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the function's answer and its log line)."""
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "deadLettered": self.dead_lettered,
            "errors": self.errors,
        }


class Forwarder:
    """Converts, batches and posts; a batch that cannot be delivered goes to the DLQ."""

    def __init__(
        self,
        submitter: Callable[[], Submitter],
        *,
        breaker: CircuitBreaker,
        retrier: Retrier,
        dead_letters: DeadLetters,
        metrics: MetricSink,
        prefix: str,
        tags: tuple[str, ...],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``submitter`` is called on first use (it reads the API key secret)."""
        self._submitter = submitter
        self._breaker = breaker
        self._retrier = retrier
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._prefix = prefix
        self._tags = tags
        self._clock = clock

    def forward_event(self, event: Mapping[str, Any], deadline: Deadline) -> ForwardOutcome:
        """Forward the EMF points of one CloudWatch Logs subscription event."""
        outcome = ForwardOutcome()
        self._forward_event(event, deadline, outcome)
        return self._finish(outcome)

    def replay(self, deadline: Deadline, *, max_messages: int = 10) -> ForwardOutcome:
        """Deliver what the DLQ holds (undelivered series, or whole events Lambda gave up on).

        Each message is deleted once handled: what still cannot be delivered went back to the
        DLQ as a new message, what Datadog no longer accepts (over an hour old) is dropped.
        """
        outcome = ForwardOutcome()
        for receipt, body in self._dead_letters.receive(max_messages):
            message = json.loads(body)
            if "awslogs" in message:
                self._forward_event(message, deadline, outcome)
            else:
                series, late = self._still_accepted(message.get("series", []))
                outcome.dropped += late
                self._post(payloads(series), deadline, outcome)
            self._dead_letters.delete(receipt)
        return self._finish(outcome)

    def _forward_event(
        self, event: Mapping[str, Any], deadline: Deadline, outcome: ForwardOutcome
    ) -> None:
        batch = decode_awslogs(event)
        if batch is None:  # the subscription's reachability check
            return
        found = extract_points(batch.messages)
        if found.malformed:
            outcome.dropped += found.malformed
            _LOG.warning(
                "malformed EMF lines skipped",
                extra={
                    "log_group": batch.log_group,
                    "count": found.malformed,
                    "reasons": found.reasons,
                },
            )
        series, late = series_of(
            found.points, prefix=self._prefix, tags=self._tags, now=self._clock()
        )
        outcome.dropped += late
        self._post(payloads(series), deadline, outcome)

    def _still_accepted(self, series: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        oldest = self._clock() - MAX_PAST_S
        kept, late = [], 0
        for entry in series:
            points = [p for p in entry["points"] if p["timestamp"] >= oldest]
            late += len(entry["points"]) - len(points)
            if points:
                kept.append({**entry, "points": points})
        return kept, late

    def _post(self, bodies: Iterable[bytes], deadline: Deadline, outcome: ForwardOutcome) -> None:
        for body in bodies:
            count = points_in(body)
            try:
                self._breaker.call(self._retrier.call_until, deadline, self._submit, body)
            except DatadogAuthError as exc:
                self._breaker.trip()  # every call would fail the same way: stop calling
                _LOG.error("metrics forwarding stopped", extra={"error": str(exc)})
                self._keep(body, count, str(exc), outcome)
            except DatadogRejectedError as exc:
                outcome.dropped += count
                outcome.errors.append(str(exc))
                _LOG.error("payload refused by the metrics intake", extra={"error": str(exc)})
            except (CircuitOpenError, RetryError) as exc:
                self._keep(body, count, str(exc), outcome)
            else:
                outcome.sent += count

    def _submit(self, body: bytes) -> None:
        self._submitter().submit(body)

    def _keep(self, body: bytes, count: int, reason: str, outcome: ForwardOutcome) -> None:
        # An SQS message holds at most 256 KiB: a payload (up to 500 KB) is kept in parts.
        for part in payloads(json.loads(body)["series"], limit=_DLQ_PART_BYTES):
            series = json.loads(part)["series"]
            self._dead_letters.send(json.dumps({"series": series, "reason": reason[:500]}))
        outcome.dead_lettered += count
        if reason not in outcome.errors:
            outcome.errors.append(reason)

    def _finish(self, outcome: ForwardOutcome) -> ForwardOutcome:
        self._metrics.add(FORWARDER_POINTS_SENT, float(outcome.sent))
        self._metrics.add(FORWARDER_POINTS_DROPPED, float(outcome.dropped))
        self._metrics.add(FORWARDER_POINTS_DEAD_LETTERED, float(outcome.dead_lettered))
        self._metrics.add(FORWARDER_BREAKER_OPEN, 0.0 if self._breaker.state == "closed" else 1.0)
        return outcome
