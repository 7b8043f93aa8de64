"""The warming engine: N overlapping pings per target, answers counted, failures never retried.

A warming run sends, to each target (a function name or alias-qualified ARN), ``fanout``
concurrent pings in the format of :mod:`lambdakit.warm` and reads the answers:

- *reached*: distinct ``instance_id`` values among the answers (environments that answered);
- *cold*: answers whose ``cold`` flag is set (environments created by this run);
- *throttles*: invocations refused with ``TooManyRequestsException`` (over the concurrency limit);
- *failures*: every other problem: an invocation error (access denied, timeout, connection), a
  ``FunctionError`` (the target crashed on the ping), or an answer that is not a warming answer
  (the target's handler is not behind the warm guard).

Each ping is sent once. A throttle or an error is counted and reported; the next scheduled run
pings again. The engine depends on the :class:`Invoker` port only; :class:`BotocoreInvoker` is
the adapter over a botocore Lambda client (create it with ``max_attempts=1``: see
:func:`no_retry_options`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from lambdakit.errors import LambdaKitError
from lambdakit.lazy import lazy_import
from lambdakit.warm import DEFAULT_HOLD_MS, ping_event

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import botocore.exceptions

    from lambdakit.clients import ClientOptions
else:
    botocore = lazy_import("botocore.exceptions")

__all__ = [
    "MAX_FANOUT",
    "BotocoreInvoker",
    "InvokeAnswer",
    "InvokeFailedError",
    "InvokeThrottledError",
    "Invoker",
    "PingResult",
    "TargetReport",
    "Warmer",
    "WarmingReport",
    "no_retry_options",
]

MAX_FANOUT: Final = 100
THROTTLE_CODE: Final = "TooManyRequestsException"
# How long a ping thread waits for the others before sending anyway (the barrier only helps the
# pings overlap; a slow thread must never stop the run).
_BARRIER_TIMEOUT_S: Final = 2.0


class InvokeThrottledError(LambdaKitError):
    """The invocation was refused for concurrency (``TooManyRequestsException``)."""

    def __init__(self, reason: str) -> None:
        """``reason``: Lambda's (``ReservedFunctionConcurrentInvocationLimitExceeded``...)."""
        super().__init__(f"throttled: {reason}")
        self.reason = reason


class InvokeFailedError(LambdaKitError):
    """The invocation failed before the function answered; ``code`` names why."""

    def __init__(self, code: str, message: str = "") -> None:
        """``code`` is the error code (``AccessDeniedException``, ``ReadTimeoutError``...)."""
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


@dataclass(frozen=True, slots=True)
class InvokeAnswer:
    """What a synchronous invocation returned."""

    payload: bytes
    function_error: str | None = None  # "Unhandled" when the function raised
    executed_version: str | None = None  # the version that ran (an alias resolves to one)


class Invoker(Protocol):
    """The port: invoke ``target`` synchronously with ``payload`` once, never retrying."""

    def invoke(self, target: str, payload: bytes) -> InvokeAnswer:
        """Return the answer; raise ``InvokeThrottledError`` or ``InvokeFailedError``."""
        ...


PingStatus = Literal["warm", "cold", "throttled", "failed"]


@dataclass(frozen=True, slots=True)
class PingResult:
    """The outcome of one ping."""

    status: PingStatus
    instance_id: str | None = None
    executed_version: str | None = None
    error: str | None = None  # error code or reason when throttled or failed


@dataclass(frozen=True, slots=True)
class TargetReport:
    """What one target's pings found."""

    target: str
    requested: int
    pings: tuple[PingResult, ...]

    @property
    def reached(self) -> int:
        """Distinct environments that answered."""
        return len({p.instance_id for p in self.pings if p.instance_id is not None})

    @property
    def cold(self) -> int:
        """Environments this run created (their first call was one of its pings)."""
        return sum(1 for p in self.pings if p.status == "cold")

    @property
    def throttles(self) -> int:
        """Pings refused for concurrency."""
        return sum(1 for p in self.pings if p.status == "throttled")

    @property
    def failures(self) -> int:
        """Pings that failed for any other reason."""
        return sum(1 for p in self.pings if p.status == "failed")

    @property
    def executed_versions(self) -> tuple[str, ...]:
        """The versions that answered, sorted (one, normally: the alias's)."""
        return tuple(sorted({p.executed_version for p in self.pings if p.executed_version}))

    @property
    def errors(self) -> dict[str, int]:
        """How many pings failed or were throttled, by error code."""
        return dict(Counter(p.error for p in self.pings if p.error is not None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the log line and the function's answer)."""
        return {
            "target": self.target,
            "requested": self.requested,
            "reached": self.reached,
            "cold": self.cold,
            "failures": self.failures,
            "throttles": self.throttles,
            "executed_versions": list(self.executed_versions),
            "errors": self.errors,
        }


@dataclass(frozen=True, slots=True)
class WarmingReport:
    """One warming run: every target's report and the time the run took."""

    run_id: str
    fanout: int
    hold_ms: int
    duration_ms: float
    targets: tuple[TargetReport, ...] = field(default_factory=tuple)

    @property
    def requested(self) -> int:
        """Pings sent, all targets together."""
        return sum(t.requested for t in self.targets)

    @property
    def reached(self) -> int:
        """Distinct environments reached, all targets together."""
        return sum(t.reached for t in self.targets)

    @property
    def cold(self) -> int:
        """Cold environments, all targets together."""
        return sum(t.cold for t in self.targets)

    @property
    def throttles(self) -> int:
        """Throttled pings, all targets together."""
        return sum(t.throttles for t in self.targets)

    @property
    def failures(self) -> int:
        """Failed pings, all targets together."""
        return sum(t.failures for t in self.targets)

    @property
    def complete(self) -> bool:
        """Whether every target had as many distinct environments answer as it was asked for."""
        return all(t.reached >= t.requested for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the one log line of a run and the function's answer."""
        return {
            "run_id": self.run_id,
            "fanout": self.fanout,
            "hold_ms": self.hold_ms,
            "requested": self.requested,
            "reached": self.reached,
            "cold": self.cold,
            "failures": self.failures,
            "throttles": self.throttles,
            "complete": self.complete,
            "duration_ms": round(self.duration_ms, 3),
            "targets": [t.to_dict() for t in self.targets],
        }


def _read_answer(answer: InvokeAnswer) -> PingResult:
    version = answer.executed_version
    if answer.function_error is not None:
        error = f"Function{answer.function_error}"
        return PingResult("failed", executed_version=version, error=error)
    try:
        body = json.loads(answer.payload)
    except ValueError:
        body = None
    instance_id = body.get("instance_id") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("warmed") is not True or not instance_id:
        # The target answered, but not as the warm guard does: its handler ran instead.
        return PingResult("failed", executed_version=version, error="NotAWarmingAnswer")
    status: PingStatus = "cold" if body.get("cold") is True else "warm"
    return PingResult(status, instance_id=str(instance_id), executed_version=version)


class Warmer:
    """Runs warming runs through an ``Invoker``; one instance per execution environment."""

    def __init__(
        self,
        invoker: Invoker,
        *,
        hold_ms: int = DEFAULT_HOLD_MS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``hold_ms`` is asked of every environment so that concurrent pings overlap."""
        self._invoker = invoker
        self.hold_ms = hold_ms
        self._clock = clock

    def _ping(self, target: str, payload: bytes, barrier: threading.Barrier) -> PingResult:
        # A late thread breaks the barrier: send anyway, the hold still makes the pings overlap.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        try:
            answer = self._invoker.invoke(target, payload)
        except InvokeThrottledError as exc:
            return PingResult("throttled", error=exc.reason)
        except InvokeFailedError as exc:
            return PingResult("failed", error=exc.code)
        return _read_answer(answer)

    def warm(self, targets: Sequence[str], fanout: int, *, run_id: str) -> WarmingReport:
        """Send ``fanout`` concurrent pings to each target at once and report what answered."""
        if not targets:
            raise ValueError("targets: name at least one function to warm")
        if not 1 <= fanout <= MAX_FANOUT:
            raise ValueError(f"fanout: {fanout} is outside 1..{MAX_FANOUT}")
        total = len(targets) * fanout
        barrier = threading.Barrier(total, timeout=_BARRIER_TIMEOUT_S)
        started = self._clock()
        with ThreadPoolExecutor(max_workers=total, thread_name_prefix="ping") as pool:
            futures = {
                target: [
                    pool.submit(
                        self._ping,
                        target,
                        ping_event(fanout=fanout, hold_ms=self.hold_ms, ping_id=f"{run_id}#{i}"),
                        barrier,
                    )
                    for i in range(fanout)
                ]
                for target in targets
            }
            reports = tuple(
                TargetReport(target, fanout, tuple(f.result() for f in pending))
                for target, pending in futures.items()
            )
        return WarmingReport(
            run_id=run_id,
            fanout=fanout,
            hold_ms=self.hold_ms,
            duration_ms=(self._clock() - started) * 1000.0,
            targets=reports,
        )


def no_retry_options(fanout: int, targets: int, *, read_timeout: float) -> ClientOptions:
    """Client options for the warmer: one attempt per call, a connection per concurrent ping."""
    from lambdakit.clients import ClientOptions  # noqa: PLC0415 - settings only, but keep init lean

    return ClientOptions(
        max_pool_connections=max(10, min(1000, fanout * targets)),
        connect_timeout=2.0,
        read_timeout=read_timeout,
        max_attempts=1,
    )


class BotocoreInvoker:
    """The ``Invoker`` adapter over a botocore Lambda client (RequestResponse invocations)."""

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        """``client`` is a botocore/boto3 Lambda client made with one attempt per call."""
        self._client = client

    def invoke(self, target: str, payload: bytes) -> InvokeAnswer:
        """Invoke once; translate botocore errors to the port's exceptions."""
        try:
            answer = self._client.invoke(
                FunctionName=target, InvocationType="RequestResponse", Payload=payload
            )
            body = answer["Payload"].read()
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "Unknown")
            if code == THROTTLE_CODE:
                reason = exc.response.get("Reason") or error.get("Message") or code
                raise InvokeThrottledError(str(reason)) from exc
            raise InvokeFailedError(code, str(error.get("Message") or "")) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise InvokeFailedError(type(exc).__name__, str(exc)) from exc
        return InvokeAnswer(
            payload=body,
            function_error=answer.get("FunctionError"),
            executed_version=answer.get("ExecutedVersion"),
        )
