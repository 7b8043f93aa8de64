"""Retries for upstream calls: full-jitter backoff, bounded by attempts and the Lambda deadline."""

from __future__ import annotations

import logging
import math
import random
import time
from typing import TYPE_CHECKING, Final, Literal, Protocol

from lambdakit.errors import LambdaKitError
from lambdakit.lazy import lazy_import
from lambdakit.metrics import UPSTREAM_RETRIES, MetricSink, NullMetricSink, WarningLogger

if TYPE_CHECKING:
    import email.utils
    from collections.abc import Callable

    import tenacity
else:
    tenacity = lazy_import("tenacity")
    email = lazy_import("email.utils")

__all__ = [
    "Deadline",
    "LambdaContextLike",
    "Retrier",
    "RetryError",
    "RetryStopReason",
    "full_jitter_delay",
    "parse_retry_after",
    "reseed_jitter",
]

type RetryStopReason = Literal["attempts", "deadline", "retry_after"]

_LOG: Final = logging.getLogger(__name__)
# Default source of jitter of every Retrier; one per environment so that a SnapStart restore can
# re-seed it (reseed_jitter) and restored copies do not all draw the same delays.
_JITTER: Final = random.Random()  # noqa: S311 - jitter, not secrets


def reseed_jitter() -> None:
    """Re-seed the default jitter source from the operating system (after a SnapStart restore)."""
    _JITTER.seed()


class LambdaContextLike(Protocol):
    """The part of the Lambda context object the deadline needs."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the runtime stops the invocation."""
        ...


class Deadline:
    """A point in time (on ``clock``) after which no new attempt should start."""

    __slots__ = ("at", "clock")

    def __init__(self, at: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Make a deadline at ``at`` seconds on ``clock`` (``time.monotonic`` by default)."""
        self.at = at
        self.clock = clock

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(clock() + seconds, clock=clock)

    @classmethod
    def from_context(
        cls,
        context: LambdaContextLike,
        *,
        safety_margin: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        """The invocation's end minus ``safety_margin`` seconds, left for saving a checkpoint."""
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls(clock() + remaining - safety_margin, clock=clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed); use it to size per-call timeouts."""
        return self.at - self.clock()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.clock() >= self.at


class RetryError(LambdaKitError):
    """Retrying stopped without success; the last error is ``last_exception`` and ``__cause__``.

    ``reason`` says why: ``"attempts"`` (all used), ``"deadline"`` (the next attempt could not
    start before the deadline) or ``"retry_after"`` (the upstream asked for a longer wait than
    ``max_wait``). A caller that must end its run cleanly catches this and checkpoints.
    """

    def __init__(self, reason: RetryStopReason, attempts: int, last_exception: BaseException):
        """Record why retrying stopped after ``attempts`` attempts."""
        self.reason: RetryStopReason = reason
        self.attempts = attempts
        self.last_exception = last_exception
        super().__init__(
            f"gave up after {attempts} attempt(s) ({reason}): {type(last_exception).__name__}"
        )


def full_jitter_delay(
    retry_number: int, *, base: float, cap: float, random_fn: Callable[[], float]
) -> float:
    """Delay before retry ``retry_number`` (0 = first retry): uniform in [0, min(cap, base*2^n)].

    ``random_fn`` returns a float in [0, 1), e.g. ``random.Random(seed).random``.
    """
    try:
        # ldexp(base, n) is base * 2**n computed exactly on the exponent.
        ceiling = min(cap, math.ldexp(base, retry_number))
    except OverflowError:  # base * 2**n beyond float range: the cap is the smaller one
        ceiling = cap
    return ceiling * random_fn()


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value, or None when absent or unparseable.

    Accepts delta-seconds (``"120"``) and an HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``,
    compared with ``now``, epoch seconds); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less parse means malformed
        return None
    return max(0.0, when.timestamp() - now())


class Retrier:
    """Retries a call with exponential backoff and full jitter while the predicate allows it.

    Built once at init with the policy, called per upstream call with that invocation's
    ``Deadline``. Only exceptions for which ``retryable(exc)`` is true are retried; any other
    propagates unchanged at once. ``retry_after(exc)`` may return the seconds the upstream asked
    to wait (a parsed ``Retry-After``); the wait is then at least that long. Each retry is logged
    at warning level and counted as ``UpstreamRetries``. ``sleep``, ``random_fn`` and the
    deadline's clock are injectable so tests never sleep.
    """

    def __init__(
        self,
        *,
        retryable: Callable[[BaseException], bool],
        max_attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 20.0,
        max_wait: float = 120.0,
        min_attempt_time: float = 0.0,
        retry_after: Callable[[BaseException], float | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random_fn: Callable[[], float] | None = None,
        metrics: MetricSink | None = None,
        logger: WarningLogger | None = None,
        name: str = "upstream",
    ) -> None:
        """Configure the policy; see the class docstring. Nothing is imported or created yet.

        ``max_delay`` caps the exponential backoff; ``max_wait`` caps any single wait (a longer
        ``Retry-After`` stops retrying); ``min_attempt_time`` is the time an attempt needs, so no
        attempt starts closer than that to the deadline.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        self.retryable = retryable
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_wait = max_wait
        self.min_attempt_time = min_attempt_time
        self.retry_after = retry_after
        self.sleep = sleep
        if random_fn is None:
            random_fn = _JITTER.random
        self.random_fn = random_fn
        self.metrics: MetricSink = metrics if metrics is not None else NullMetricSink()
        self.logger: WarningLogger = logger if logger is not None else _LOG
        self.name = name

    def call[**P, R](
        self,
        fn: Callable[P, R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Call ``fn(*args, **kwargs)`` under the policy, without a deadline."""
        return self.call_until(None, fn, *args, **kwargs)

    def call_until[**P, R](
        self,
        deadline: Deadline | None,
        fn: Callable[P, R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Call ``fn(*args, **kwargs)``, retrying while attempts remain and ``deadline`` allows.

        Returns ``fn``'s result; re-raises a non-retryable error unchanged; raises ``RetryError``
        when it stops retrying. No wait ends after ``deadline`` minus ``min_attempt_time``: the
        backoff is shortened to fit, and a ``Retry-After`` that does not fit stops retrying.
        """
        # Fast path: the first attempt runs outside tenacity, so a call that succeeds costs
        # next to nothing and tenacity is imported only when a retry is actually needed.
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not self.retryable(exc):
                raise
            first_failure: BaseException = exc
        return self._retry(deadline, first_failure, fn, *args, **kwargs)

    def _retry[**P, R](
        self,
        deadline: Deadline | None,
        first_failure: BaseException,
        fn: Callable[P, R],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Let tenacity drive attempts 2..n; its attempt 1 replays ``first_failure``."""
        stopped: list[RetryStopReason] = []
        replay: list[BaseException] = [first_failure]

        def attempt() -> R:
            if replay:
                raise replay.pop()
            return fn(*args, **kwargs)

        def wait(state: tenacity.RetryCallState) -> float:
            delay = full_jitter_delay(
                state.attempt_number - 1,
                base=self.base_delay,
                cap=self.max_delay,
                random_fn=self.random_fn,
            )
            # The backoff is trimmed to what the deadline leaves (a shorter wait is still a valid
            # jittered wait); an upstream's Retry-After is never shortened, only refused in stop.
            delay = min(delay, max(0.0, self._budget(deadline)))
            asked = self._asked_wait(state)
            return delay if asked is None else max(delay, asked)

        def stop(state: tenacity.RetryCallState) -> bool:
            reason = self._stop_reason(state.attempt_number, state.upcoming_sleep, deadline)
            if reason is not None:
                stopped.append(reason)
                return True
            return False

        def give_up(state: tenacity.RetryCallState) -> R:
            error = _exception_of(state)
            raise RetryError(stopped[-1], state.attempt_number, error) from error

        retrying = tenacity.Retrying(
            sleep=self.sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(self.retryable),
            before_sleep=self._report,
            retry_error_callback=give_up,
        )
        return retrying(attempt)

    def _asked_wait(self, state: tenacity.RetryCallState) -> float | None:
        if self.retry_after is None:
            return None
        asked = self.retry_after(_exception_of(state))
        return None if asked is None else max(0.0, asked)

    def _budget(self, deadline: Deadline | None) -> float:
        """Seconds that may still be spent waiting before the last useful attempt must start."""
        if deadline is None:
            return float("inf")
        return deadline.remaining() - self.min_attempt_time

    def _stop_reason(
        self, attempts: int, upcoming_sleep: float, deadline: Deadline | None
    ) -> RetryStopReason | None:
        if attempts >= self.max_attempts:
            return "attempts"
        if upcoming_sleep > self.max_wait:
            return "retry_after"
        budget = self._budget(deadline)
        if budget <= 0 or upcoming_sleep > budget:
            return "deadline"
        return None

    def _report(self, state: tenacity.RetryCallState) -> None:
        error = _exception_of(state)
        self.logger.warning(
            "retrying upstream call",
            extra={
                "operation": self.name,
                "attempt": state.attempt_number,
                "wait_seconds": round(state.upcoming_sleep, 3),
                "error_type": type(error).__name__,
            },
        )
        self.metrics.add(UPSTREAM_RETRIES, 1.0)


def _exception_of(state: tenacity.RetryCallState) -> BaseException:
    outcome = state.outcome
    error = None if outcome is None else outcome.exception()
    if error is None:  # the retry predicate only accepts exceptions, so this cannot happen
        raise AssertionError("retry state without an exception")
    return error
