"""Circuit breaker: closed -> open -> half-open probe -> closed/open, on a fake clock."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import pytest

from lambdakit.breaker import CircuitBreaker, CircuitOpenError, get_breaker
from lambdakit.metrics import CIRCUIT_CLOSED, CIRCUIT_OPENED, InMemoryMetricSink

if TYPE_CHECKING:
    from fakes.clock import FakeClock


class UpstreamDownError(Exception):
    """A failure the breaker counts."""


class NotFoundError(Exception):
    """An answer from a healthy upstream: not counted."""


class Upstream:
    """Counts calls; fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise UpstreamDownError("503")
        return "ok"


@pytest.fixture
def metrics() -> InMemoryMetricSink:
    return InMemoryMetricSink()


@pytest.fixture
def breaker(clock: FakeClock, metrics: InMemoryMetricSink) -> CircuitBreaker:
    return CircuitBreaker(
        "vanta",
        failure_threshold=3,
        reset_timeout=30.0,
        counts=lambda exc: isinstance(exc, UpstreamDownError),
        clock=clock,
        metrics=metrics,
    )


def trip(breaker: CircuitBreaker, upstream: Upstream) -> CircuitOpenError:
    upstream.down = True
    for _ in range(2):
        with pytest.raises(UpstreamDownError):
            breaker.call(upstream)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(upstream)
    return caught.value


def test_given_closed_when_calls_succeed_then_results_pass_through(breaker: CircuitBreaker) -> None:
    assert breaker.call(lambda a, b: a + b, 1, b=2) == 3
    assert breaker.state == "closed"


def test_given_threshold_failures_when_tripping_then_open_error_chains_the_failure(
    breaker: CircuitBreaker, metrics: InMemoryMetricSink, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = Upstream()

    with caplog.at_level(logging.WARNING, logger="lambdakit.breaker"):
        error = trip(breaker, upstream)

    assert isinstance(error.__cause__, UpstreamDownError)
    assert error.retry_in == pytest.approx(30.0)
    assert breaker.state == "open"
    assert metrics.recorded == [(CIRCUIT_OPENED, 1.0)]
    changes = [r for r in caplog.records if r.getMessage() == "circuit breaker state change"]
    assert [(r.__dict__["from_state"], r.__dict__["to_state"]) for r in changes] == [
        ("closed", "open")
    ]


def test_given_open_when_called_before_timeout_then_refused_without_calling_upstream(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    upstream = Upstream()
    trip(breaker, upstream)
    calls = upstream.calls
    clock.advance(29.0)

    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(upstream)

    assert upstream.calls == calls
    assert caught.value.retry_in == pytest.approx(1.0)
    assert "vanta" in str(caught.value)


def test_given_open_when_timeout_passes_and_probe_succeeds_then_closed(
    breaker: CircuitBreaker, clock: FakeClock, metrics: InMemoryMetricSink
) -> None:
    upstream = Upstream()
    trip(breaker, upstream)
    clock.advance(30.0)
    upstream.down = False

    assert breaker.state == "half-open"
    assert breaker.call(upstream) == "ok"
    assert state_after_call(breaker) == "closed"
    assert metrics.recorded == [(CIRCUIT_OPENED, 1.0), (CIRCUIT_CLOSED, 1.0)]


def test_given_half_open_when_probe_fails_then_open_again_for_a_full_timeout(
    breaker: CircuitBreaker, clock: FakeClock, metrics: InMemoryMetricSink
) -> None:
    upstream = Upstream()
    trip(breaker, upstream)
    clock.advance(31.0)
    calls = upstream.calls

    with pytest.raises(CircuitOpenError):
        breaker.call(upstream)  # the probe: reaches the upstream once, fails

    assert upstream.calls == calls + 1
    assert breaker.state == "open"
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(upstream)
    assert upstream.calls == calls + 1
    assert metrics.total(CIRCUIT_OPENED) == 2
    assert metrics.total(CIRCUIT_CLOSED) == 0


def test_given_uncounted_errors_when_they_repeat_then_circuit_stays_closed(
    breaker: CircuitBreaker,
) -> None:
    def not_found() -> None:
        raise NotFoundError("404")

    for _ in range(10):
        with pytest.raises(NotFoundError):
            breaker.call(not_found)

    assert breaker.state == "closed"


def test_given_failures_below_threshold_when_a_call_succeeds_then_count_restarts(
    breaker: CircuitBreaker,
) -> None:
    upstream = Upstream()
    upstream.down = True
    for _ in range(2):
        with pytest.raises(UpstreamDownError):
            breaker.call(upstream)
    assert breaker.failure_count == 2
    upstream.down = False
    breaker.call(upstream)
    upstream.down = True
    for _ in range(2):
        with pytest.raises(UpstreamDownError):
            breaker.call(upstream)

    assert breaker.state == "closed"


def test_given_open_when_reset_then_closed(breaker: CircuitBreaker) -> None:
    trip(breaker, Upstream())

    breaker.reset()

    assert breaker.state == "closed"
    assert breaker.call(lambda: "ok") == "ok"


def test_given_a_name_when_getting_breaker_twice_then_state_is_shared(clock: FakeClock) -> None:
    first = get_breaker("vanta", failure_threshold=1, clock=clock)
    with pytest.raises(CircuitOpenError):
        first.call(_down_upstream())

    again = get_breaker("vanta", failure_threshold=99)

    assert again is first
    assert again.state == "open"
    assert get_breaker("other").state == "closed"


def test_given_invalid_threshold_when_building_then_value_error() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)


def _down_upstream() -> Upstream:
    upstream = Upstream()
    upstream.down = True
    return upstream


def state_after_call(breaker: CircuitBreaker) -> str:
    """The state read afresh (a helper so the type checker does not keep an earlier narrowing)."""
    return breaker.state


def test_given_shared_breaker_when_threads_call_concurrently_then_calls_overlap(
    breaker: CircuitBreaker,
) -> None:
    # Each call waits until all of them are inside the upstream: this only completes if the
    # breaker does not serialise calls (pybreaker's call() would; lambdakit uses calling()).
    threads = 4
    all_inside = threading.Barrier(threads, timeout=10)
    results: list[str] = []

    def upstream() -> str:
        all_inside.wait()
        return "ok"

    def worker() -> None:
        results.append(breaker.call(upstream))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    assert results == ["ok"] * threads
    assert breaker.state == "closed"


def test_given_closed_breaker_when_tripped_then_it_refuses_calls_at_once(
    breaker: CircuitBreaker, metrics: InMemoryMetricSink
) -> None:
    breaker.trip()

    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "never called")
    assert metrics.total(CIRCUIT_OPENED) == 1
