"""Warm guard: pings answered at once (with fan-out hold), real events passed on and counted."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from lambdakit.coldstart import ColdStartTracker, is_cold_start
from lambdakit.metrics import COLD_START, REAL_INVOCATIONS, WARMING_PINGS, InMemoryMetricSink
from lambdakit.observability import PowertoolsMetricSink
from lambdakit.warm import is_warming_ping, warm_guard

from .conftest import FakeContext

if TYPE_CHECKING:
    from fakes.clock import FakeClock, FakeSleep

API_EVENT: dict[str, Any] = {"httpMethod": "GET", "path": "/health", "headers": {}}


class Handler:
    """A handler that records what reached it."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.cold_flags: list[bool] = []

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        self.events.append(event)
        self.cold_flags.append(is_cold_start())
        return {"statusCode": 200}


def make_tracker() -> ColdStartTracker:
    return ColdStartTracker(process_age=lambda: 0.3, instance_id="env-a")


def test_given_ping_when_invoked_then_answered_without_running_handler(clock: FakeClock) -> None:
    handler = Handler()
    metrics = InMemoryMetricSink()
    guarded = warm_guard(metrics=metrics, app_version="1.2.0", tracker=make_tracker())(handler)

    answer = guarded({"warmer": True, "ping_id": "p-1"}, FakeContext(clock))

    assert handler.events == []
    assert answer == {
        "warmed": True,
        "cold": True,
        "instance_id": "env-a",
        "init_duration_ms": 300.0,
        "function_name": "api",
        "function_version": "$LATEST",
        "app_version": "1.2.0",
        "ping_id": "p-1",
        "fanout": 1,
        "held_ms": 0.0,
    }
    assert json.loads(json.dumps(answer)) == answer
    assert metrics.recorded == [(WARMING_PINGS, 1.0)]
    assert metrics.flushes == 1


def test_given_real_events_when_invoked_then_handler_runs_and_cold_start_is_counted_once(
    clock: FakeClock,
) -> None:
    handler = Handler()
    metrics = InMemoryMetricSink()
    guarded = warm_guard(metrics=metrics, tracker=make_tracker())(handler)

    assert guarded(API_EVENT, FakeContext(clock)) == {"statusCode": 200}
    guarded(API_EVENT, FakeContext(clock))

    assert handler.events == [API_EVENT, API_EVENT]
    assert metrics.total(REAL_INVOCATIONS) == 2
    assert metrics.total(COLD_START) == 1
    assert metrics.flushes == 0  # real invocations are published by the handler's log_metrics


def test_given_ping_first_when_real_event_follows_then_no_cold_start_is_counted(
    clock: FakeClock,
) -> None:
    handler = Handler()
    metrics = InMemoryMetricSink()
    guarded = warm_guard(handler)
    guarded_with_metrics = warm_guard(metrics=metrics)(handler)

    first = guarded({"warmer": True}, FakeContext(clock))
    guarded_with_metrics(API_EVENT, FakeContext(clock))
    second = guarded({"warmer": True}, FakeContext(clock))

    assert first["cold"] is True
    assert second["cold"] is False
    assert second["instance_id"] == first["instance_id"]
    assert handler.cold_flags == [False]
    assert metrics.total(COLD_START) == 0
    assert metrics.total(REAL_INVOCATIONS) == 1


def test_given_fanout_when_pinged_then_environment_is_held_for_hold_ms(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    guarded = warm_guard(sleep=sleep, tracker=make_tracker())(Handler())

    answer = guarded({"warmer": True, "fanout": 5, "hold_ms": 150}, FakeContext(clock))

    assert sleep.calls == [0.15]
    assert (answer["fanout"], answer["held_ms"]) == (5, 150.0)


@pytest.mark.parametrize(
    ("ping", "remaining_ms", "expected_sleeps"),
    [
        ({"warmer": True, "fanout": 3}, 30_000, [0.1]),  # default hold
        ({"warmer": True, "fanout": 3, "hold_ms": 60_000}, 30_000, [1.0]),  # max_hold_ms
        ({"warmer": True, "fanout": 3, "hold_ms": 900}, 500, [0.3]),  # remaining time
        ({"warmer": True, "fanout": 3, "hold_ms": 900}, 150, []),  # no time to hold
        ({"warmer": True, "hold_ms": 900}, 30_000, []),  # no fan-out, no hold
        ({"warmer": True, "fanout": "5", "hold_ms": 50}, 30_000, []),  # malformed fan-out
        ({"warmer": True, "fanout": True}, 30_000, []),
        ({"warmer": True, "fanout": -2}, 30_000, []),
    ],
)
def test_given_ping_variants_when_pinged_then_hold_is_bounded_and_ping_always_answered(
    clock: FakeClock,
    sleep: FakeSleep,
    ping: dict[str, Any],
    remaining_ms: int,
    expected_sleeps: list[float],
) -> None:
    guarded = warm_guard(sleep=sleep, tracker=make_tracker())(Handler())

    answer = guarded(ping, FakeContext(clock, remaining_ms=remaining_ms))

    assert answer["warmed"] is True
    assert sleep.calls == expected_sleeps


@pytest.mark.parametrize(
    "event",
    [
        {"warmer": "true"},
        {"warmer": 1},
        {"source": "aws.events", "detail": {"warmer": True}},
        [{"warmer": True}],
        "warmer",
        None,
    ],
)
def test_given_event_that_is_not_a_ping_when_invoked_then_handler_gets_it(
    clock: FakeClock, event: Any
) -> None:
    handler = Handler()

    warm_guard(handler)(event, FakeContext(clock))

    assert handler.events == [event]
    assert is_warming_ping(event) is False


def test_given_n_concurrent_pings_with_fanout_then_they_land_on_n_distinct_environments() -> None:
    # A miniature Lambda service: an invocation goes to an idle environment, or a new one is
    # created. The hold is the injected sleep; here it waits until all N pings are in flight,
    # which is what a long enough hold achieves in real time.
    fanout = 4
    all_in_flight = threading.Barrier(fanout, timeout=10)

    def hold(_seconds: float) -> None:
        all_in_flight.wait()

    handler = Handler()
    environments: list[tuple[Any, threading.Lock]] = []
    service_lock = threading.Lock()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        with service_lock:
            idle = [env for env in environments if not env[1].locked()]
            if idle:
                guarded, busy = idle[0]
            else:
                guarded, busy = (
                    warm_guard(sleep=hold, tracker=ColdStartTracker())(handler),
                    threading.Lock(),
                )
                environments.append((guarded, busy))
            busy.acquire()
        try:
            return guarded(event, None)  # type: ignore[no-any-return]
        finally:
            busy.release()

    answers: list[dict[str, Any]] = []
    answers_lock = threading.Lock()

    def warmer_thread(n: int) -> None:
        answer = invoke({"warmer": True, "fanout": fanout, "hold_ms": 100, "ping_id": str(n)})
        with answers_lock:
            answers.append(answer)

    threads = [threading.Thread(target=warmer_thread, args=(n,)) for n in range(fanout)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({answer["instance_id"] for answer in answers}) == fanout
    assert all(answer["cold"] for answer in answers)
    assert handler.events == []


def test_given_powertools_decorators_inside_when_pinged_then_no_metrics_or_logs_from_them(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Metrics(namespace="LambdakitTest", service="api")
    logger = Logger(service="api")
    handler = Handler()

    @warm_guard(metrics=PowertoolsMetricSink(metrics), tracker=make_tracker())
    @metrics.log_metrics
    @logger.inject_lambda_context
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return handler(event, context)

    try:
        answer = lambda_handler({"warmer": True}, FakeContext(clock))
        ping_output = capsys.readouterr().out
        lambda_handler(API_EVENT, FakeContext(clock))
        real_output = capsys.readouterr().out
    finally:
        metrics.clear_metrics()

    assert answer["warmed"] is True
    assert handler.events == [API_EVENT]
    ping_emf = [json.loads(line) for line in ping_output.splitlines() if '"_aws"' in line]
    assert [set(doc) & {WARMING_PINGS, REAL_INVOCATIONS, COLD_START} for doc in ping_emf] == [
        {WARMING_PINGS}
    ]
    real_emf = [json.loads(line) for line in real_output.splitlines() if '"_aws"' in line]
    assert len(real_emf) == 1
    assert real_emf[0][REAL_INVOCATIONS] == [1.0]
    assert COLD_START not in real_emf[0]  # the ping warmed this environment
    assert WARMING_PINGS not in real_emf[0]


def test_given_decorated_handler_then_name_and_docstring_are_kept() -> None:
    def lambda_handler(event: Any, context: Any) -> None:
        """Docs."""

    guarded = warm_guard(lambda_handler)

    assert guarded.__name__ == "lambda_handler"
    assert guarded.__doc__ == "Docs."
