"""Retry: full-jitter bounds, attempt and deadline limits, Retry-After, predicate, reporting."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest
from fakes.clock import FakeClock, FakeSleep
from hypothesis import given
from hypothesis import strategies as st

import lambdakit
from lambdakit.metrics import UPSTREAM_RETRIES, InMemoryMetricSink
from lambdakit.observability import ObservabilitySettings, create_logger
from lambdakit.retry import Deadline, Retrier, RetryError, full_jitter_delay, parse_retry_after

from .conftest import FakeContext


class ThrottledError(Exception):
    """A retryable upstream error that may carry a Retry-After in seconds."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("429")
        self.retry_after = retry_after


class BadRequestError(Exception):
    """A non-retryable upstream error."""


def is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, ThrottledError)


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, ThrottledError) else None


class Flaky:
    """Fails with the queued errors, one per call, then returns "ok"; each call takes time."""

    def __init__(
        self, errors: list[BaseException], clock: FakeClock, duration: float = 0.0
    ) -> None:
        self.errors = list(errors)
        self.clock = clock
        self.duration = duration
        self.started_at: list[float] = []

    def __call__(self) -> str:
        self.started_at.append(self.clock())
        self.clock.advance(self.duration)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def make_retrier(
    sleep: FakeSleep, *, metrics: InMemoryMetricSink | None = None, seed: int = 7, **kwargs: float
) -> Retrier:
    return Retrier(
        retryable=is_throttled,
        retry_after=retry_after_of,
        sleep=sleep,
        random_fn=random.Random(seed).random,  # noqa: S311 - seeded on purpose
        metrics=metrics,
        **kwargs,  # type: ignore[arg-type]
    )


@given(
    retry_number=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=600.0),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_given_any_retry_number_when_computing_delay_then_within_full_jitter_bounds(
    retry_number: int, base: float, cap: float, draw: float
) -> None:
    delay = full_jitter_delay(retry_number, base=base, cap=cap, random_fn=lambda: draw)

    # Exact arithmetic for the bound: base * 2**n can exceed the float range.
    assert 0 <= Fraction(delay) <= min(Fraction(cap), Fraction(base) * 2**retry_number)


def test_given_seeded_random_when_retrying_then_sleeps_are_reproducible_and_grow_bounded(
    clock: FakeClock,
) -> None:
    def run(seed: int) -> list[float]:
        sleep = FakeSleep(clock)
        retrier = make_retrier(sleep, seed=seed, max_attempts=6, base_delay=1.0, max_delay=8.0)
        retrier.call(Flaky([ThrottledError()] * 5, clock))
        return sleep.calls

    first, again = run(3), run(3)

    assert first == again
    assert len(first) == 5
    for n, slept in enumerate(first):
        assert 0.0 <= slept <= min(8.0, 1.0 * 2**n)


def test_given_transient_failures_when_calling_then_result_after_retries_and_each_is_reported(
    clock: FakeClock, sleep: FakeSleep, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = InMemoryMetricSink()
    retrier = make_retrier(sleep, metrics=metrics)

    with caplog.at_level(logging.WARNING, logger="lambdakit.retry"):
        result = retrier.call(Flaky([ThrottledError(), ThrottledError()], clock))

    assert result == "ok"
    assert len(sleep.calls) == 2
    assert metrics.recorded == [(UPSTREAM_RETRIES, 1.0), (UPSTREAM_RETRIES, 1.0)]
    retries = [r for r in caplog.records if r.getMessage() == "retrying upstream call"]
    assert [r.__dict__["attempt"] for r in retries] == [1, 2]
    assert {r.__dict__["error_type"] for r in retries} == {"ThrottledError"}


def test_given_non_retryable_error_when_calling_then_raised_at_once_unchanged(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    metrics = InMemoryMetricSink()
    fn = Flaky([BadRequestError("400")], clock)

    with pytest.raises(BadRequestError, match="400"):
        make_retrier(sleep, metrics=metrics).call(fn)

    assert len(fn.started_at) == 1
    assert sleep.calls == []
    assert metrics.recorded == []


def test_given_persistent_failure_when_attempts_run_out_then_retry_error_with_last_cause(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    last = ThrottledError()
    fn = Flaky([ThrottledError(), ThrottledError(), last], clock)

    with pytest.raises(RetryError) as caught:
        make_retrier(sleep, max_attempts=3).call(fn)

    assert caught.value.reason == "attempts"
    assert caught.value.attempts == 3
    assert caught.value.last_exception is last
    assert caught.value.__cause__ is last
    assert len(sleep.calls) == 2


@given(
    remaining_ms=st.integers(min_value=0, max_value=60_000),
    attempt_seconds=st.floats(min_value=0.0, max_value=5.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_given_lambda_deadline_when_retrying_then_no_attempt_starts_after_it(
    remaining_ms: int, attempt_seconds: float, seed: int
) -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    context = FakeContext(clock, remaining_ms=remaining_ms)
    deadline = Deadline.from_context(context, safety_margin=2.0, clock=clock)
    retrier = make_retrier(
        sleep, seed=seed, max_attempts=50, base_delay=0.5, max_delay=10.0, min_attempt_time=1.0
    )
    fn = Flaky([ThrottledError()] * 100, clock, duration=attempt_seconds)

    with pytest.raises(RetryError) as caught:
        retrier.call_until(deadline, fn)

    assert caught.value.reason in {"deadline", "attempts"}
    # Every retry starts early enough to leave min_attempt_time before the deadline, which is
    # itself the safety margin before the Lambda timeout.
    assert all(start <= deadline.at - 1.0 for start in fn.started_at[1:])
    assert sum(sleep.calls) <= max(0.0, context.ends_at - 2.0 - FakeClock().now)


def test_given_short_deadline_when_backoff_would_overrun_then_stops_before_lambda_timeout(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    context = FakeContext(clock, remaining_ms=10_000)
    deadline = Deadline.from_context(context, safety_margin=3.0, clock=clock)
    fn = Flaky([ThrottledError()] * 100, clock, duration=2.0)
    retrier = make_retrier(sleep, max_attempts=100, base_delay=1.0, max_delay=30.0)

    with pytest.raises(RetryError) as caught:
        retrier.call_until(deadline, fn)

    assert caught.value.reason == "deadline"
    assert context.get_remaining_time_in_millis() >= 1_000
    assert clock() <= deadline.at + 2.0


def test_given_retry_after_when_deadline_allows_then_wait_is_at_least_retry_after(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    deadline = Deadline.after(60.0, clock=clock)

    result = make_retrier(sleep, base_delay=0.1).call_until(
        deadline, Flaky([ThrottledError(retry_after=7.0)], clock)
    )

    assert result == "ok"
    assert sleep.calls == [7.0]


def test_given_retry_after_beyond_deadline_when_retrying_then_gives_up_without_sleeping(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    context = FakeContext(clock, remaining_ms=10_000)
    deadline = Deadline.from_context(context, safety_margin=1.0, clock=clock)
    fn = Flaky([ThrottledError(retry_after=30.0)], clock)

    with pytest.raises(RetryError) as caught:
        make_retrier(sleep).call_until(deadline, fn)

    assert caught.value.reason == "deadline"
    assert caught.value.attempts == 1
    assert sleep.calls == []


def test_given_retry_after_above_max_wait_when_no_deadline_then_gives_up(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    with pytest.raises(RetryError) as caught:
        make_retrier(sleep, max_wait=60.0).call(Flaky([ThrottledError(retry_after=3600.0)], clock))

    assert caught.value.reason == "retry_after"
    assert sleep.calls == []


def test_given_expired_deadline_when_first_attempt_fails_then_no_retry(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    deadline = Deadline(clock() - 1.0, clock=clock)

    with pytest.raises(RetryError, match="deadline"):
        make_retrier(sleep).call_until(deadline, Flaky([ThrottledError()], clock))

    assert sleep.calls == []
    assert deadline.expired()


def test_given_context_when_building_deadline_then_margin_is_subtracted(clock: FakeClock) -> None:
    deadline = Deadline.from_context(
        FakeContext(clock, remaining_ms=15_000), safety_margin=2.5, clock=clock
    )

    assert deadline.remaining() == pytest.approx(12.5)


def test_given_arguments_when_calling_then_they_reach_the_function(sleep: FakeSleep) -> None:
    def add(a: int, *, b: int) -> int:
        return a + b

    assert make_retrier(sleep).call(add, 2, b=3) == 5


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -0.5}])
def test_given_invalid_policy_when_building_then_value_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Retrier(retryable=is_throttled, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("Sun, 22 Nov 2026 05:30:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 05:29:00 GMT", 0.0),  # already past
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_given_retry_after_header_when_parsing_then_seconds_or_none(
    header: str | None, expected: float | None
) -> None:
    now = datetime(2026, 11, 22, 5, 30, tzinfo=UTC).timestamp()

    assert parse_retry_after(header, now=lambda: now) == expected


def test_given_powertools_logger_when_retrying_then_retry_is_logged_as_json(
    clock: FakeClock, sleep: FakeSleep, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = create_logger(ObservabilitySettings(service="sync", log_level="INFO"))
    retrier = Retrier(retryable=is_throttled, sleep=sleep, logger=logger, name="vanta.list")

    retrier.call(Flaky([ThrottledError()], clock))

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "retrying upstream call"
    assert (line["level"], line["operation"], line["attempt"]) == ("WARNING", "vanta.list", 1)


@pytest.mark.parametrize(("failures", "tenacity_loaded"), [(0, False), (1, True)])
def test_given_fresh_process_when_calling_then_tenacity_is_loaded_only_for_a_retry(
    failures: int, tenacity_loaded: bool
) -> None:
    code = (
        "import sys\n"
        "from lambdakit.retry import Retrier\n"
        f"errors = [TimeoutError()] * {failures}\n"
        "def fn():\n"
        "    if errors:\n"
        "        raise errors.pop()\n"
        "    return 'ok'\n"
        "retrier = Retrier(retryable=lambda e: True, sleep=lambda s: None)\n"
        "print(retrier.call(fn), 'tenacity' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(lambdakit.__file__).parent.parent)},
    )

    assert completed.stdout.split() == ["ok", str(tenacity_loaded)]
