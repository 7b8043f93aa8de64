"""The forwarder against the loopback Datadog stand-in: delivery, bad input, faults, replay."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
from fakes.clock import FakeClock, FakeSleep

from forwarder_fn.datadog import DatadogClient, breaker_counts, is_transient, retry_after_of
from forwarder_fn.forward import Forwarder
from lambdakit.breaker import CircuitBreaker
from lambdakit.emf import parse_emf
from lambdakit.metrics import InMemoryMetricSink
from lambdakit.retry import Deadline, Retrier
from localstage.datadog_standin import DatadogStandIn, Fault, start_datadog_standin
from localstage.log_subscriptions import awslogs_event

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration]

KEY: Final = "dd-test-key"


def _emf(name: str, value: float, *, service: str = "sync", at: float | None = None) -> str:
    stamp = int((time.time() if at is None else at) * 1000)
    return json.dumps(
        {
            "_aws": {
                "Timestamp": stamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "VulnStats",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            },
            "service": service,
            name: [value],
        }
    )


class ListDeadLetters:
    """An in-memory DLQ with the SQS adapter's interface."""

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}
        self._next = 0

    def send(self, body: str) -> None:
        self._next += 1
        self.messages[f"r{self._next}"] = body

    def receive(self, max_messages: int) -> list[tuple[str, str]]:
        return list(self.messages.items())[:max_messages]

    def delete(self, receipt: str) -> None:
        del self.messages[receipt]


@pytest.fixture
def standin() -> Iterator[DatadogStandIn]:
    running = start_datadog_standin(KEY)
    yield running
    running.stop()


class Rig:
    def __init__(self, standin: DatadogStandIn, key: str = KEY) -> None:
        self.clock = FakeClock()
        self.sleep = FakeSleep(self.clock)
        self.metrics = InMemoryMetricSink()
        self.dlq = ListDeadLetters()
        self.session = requests.Session()
        client = DatadogClient(standin.url, key, self.session, read_timeout=0.5)
        self.breaker = CircuitBreaker(
            "dd-test",
            failure_threshold=2,
            reset_timeout=60,
            counts=breaker_counts,
            clock=self.clock,
        )
        retrier = Retrier(
            retryable=is_transient,
            max_attempts=3,
            base_delay=0.1,
            retry_after=retry_after_of,
            sleep=self.sleep,
        )
        self.forwarder = Forwarder(
            lambda: client,
            breaker=self.breaker,
            retrier=retrier,
            dead_letters=self.dlq,
            metrics=self.metrics,
            prefix="vulnstats",
            tags=("env:test",),
        )

    def forward(self, lines: list[str]) -> Any:
        deadline = Deadline.after(60, clock=self.clock)
        return self.forwarder.forward_event(awslogs_event("/aws/lambda/s-sync", lines), deadline)


def _received(series: list[dict[str, Any]]) -> Counter[tuple[str, float]]:
    return Counter((s["metric"], p["value"]) for s in series for p in s["points"])


def _emitted(lines: list[str]) -> Counter[tuple[str, float]]:
    return Counter((f"vulnstats.{p.name}", p.value) for line in lines for p in parse_emf(line))


def test_given_emf_lines_when_forwarded_then_the_intake_holds_the_same_points(
    standin: DatadogStandIn,
) -> None:
    lines = [_emf("RecordsFetched", 1600), _emf("PagesFetched", 16), '{"message": "run complete"}']

    outcome = Rig(standin).forward(lines)

    assert (outcome.sent, outcome.dropped, outcome.dead_lettered) == (2, 0, 0)
    assert _received(standin.series) == _emitted(lines[:2])
    assert {"env:test", "service:sync", "namespace:VulnStats"} <= set(standin.series[0]["tags"])
    assert standin.series[0]["type"] == 1  # a Count is a Datadog count


def test_given_malformed_emf_when_forwarded_then_it_is_counted_and_the_rest_delivered(
    standin: DatadogStandIn,
) -> None:
    broken = _emf("RecordsFetched", 1).replace('"Timestamp"', '"Time"')

    rig = Rig(standin)
    outcome = rig.forward([broken, _emf("PagesFetched", 3)])

    assert (outcome.sent, outcome.dropped) == (1, 1)
    assert _received(standin.series) == Counter({("vulnstats.PagesFetched", 3.0): 1})
    assert rig.metrics.total("ForwarderPointsDropped") == 1


def test_given_wrong_api_key_when_forwarded_then_one_call_opens_the_breaker_and_keeps_the_points(
    standin: DatadogStandIn,
) -> None:
    rig = Rig(standin, key="wrong")

    first = rig.forward([_emf("RecordsFetched", 5)])
    second = rig.forward([_emf("RecordsFetched", 6)])

    assert standin.requests == 1  # no retry, and the second batch never called the intake
    assert rig.breaker.state == "open"
    assert first.dead_lettered == second.dead_lettered == 1
    assert "refused the API key" in first.errors[0]
    assert len(rig.dlq.messages) == 2


def test_given_intake_down_when_forwarding_then_breaker_opens_and_replay_delivers_after_recovery(
    standin: DatadogStandIn,
) -> None:
    rig = Rig(standin)
    standin.set_fault(Fault("status", status=503))
    lines = [[_emf("RecordsFetched", n)] for n in range(1, 5)]

    outcomes = [rig.forward(batch) for batch in lines]

    assert rig.breaker.state == "open"
    assert standin.requests < 3 * len(lines)  # once open, batches are kept without calling
    assert sum(o.dead_lettered for o in outcomes) == 4
    # when the intake recovers and the circuit's reset time has passed, a replay delivers all
    standin.set_fault(None)
    rig.clock.advance(61)
    replayed = rig.forwarder.replay(Deadline.after(60, clock=rig.clock))
    assert (replayed.sent, replayed.dead_lettered) == (4, 0)
    assert rig.dlq.messages == {}
    assert _received(standin.series) == _emitted([b[0] for b in lines])


def test_given_rate_limit_when_forwarding_then_retry_after_is_honoured(
    standin: DatadogStandIn,
) -> None:
    rig = Rig(standin)
    standin.set_fault(Fault("rate_limit", times=1, retry_after=2))

    outcome = rig.forward([_emf("RecordsFetched", 9)])

    assert outcome.sent == 1
    assert rig.sleep.calls[0] >= 2


def test_given_hanging_intake_when_forwarding_then_the_timeout_is_retried(
    standin: DatadogStandIn,
) -> None:
    rig = Rig(standin)
    standin.set_fault(Fault("hang", times=1, seconds=1.0))

    outcome = rig.forward([_emf("RecordsFetched", 4)])

    assert outcome.sent == 1
    assert standin.requests == 2


def test_given_points_older_than_an_hour_when_forwarded_then_dropped_as_datadog_would(
    standin: DatadogStandIn,
) -> None:
    outcome = Rig(standin).forward([_emf("RecordsFetched", 1, at=time.time() - 2 * 3600)])

    assert (outcome.sent, outcome.dropped) == (0, 1)
    assert standin.series == []
