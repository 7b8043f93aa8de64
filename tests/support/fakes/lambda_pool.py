"""A fake Lambda function for the warmer's Invoker port: environments, a limit, the guard."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

from lambdakit.coldstart import ColdStartTracker
from lambdakit.warm import warm_guard
from lambdakit.warmer import InvokeAnswer, InvokeFailedError, InvokeThrottledError


class _Context:
    function_name = "api"
    function_version = "7"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _business_handler(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "business"}


class FakeLambda:
    """Execution environments of one function, each running the real warm guard.

    A call takes an idle environment (warm) or creates one (cold), unless ``limit`` calls are
    already in flight (throttled). ``arrivals`` makes every call, once its environment is chosen
    or refused, wait until that many calls have arrived: the overlap a ping's hold gives on
    Lambda, without sleeping. ``fail`` maps a target to the error code its calls fail with;
    ``answer_as_business`` sends calls to an unguarded handler (a target without the guard).
    """

    def __init__(self, *, limit: int | None = None, arrivals: int = 1) -> None:
        self.limit = limit
        self.arrivals = threading.Barrier(arrivals, timeout=5)
        self.fail: dict[str, str] = {}
        self.function_error: set[str] = set()
        self.answer_as_business: set[str] = set()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.handled_by_business = 0
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._in_flight = 0
        self._ids = itertools.count(1)

    def _environment(self) -> Any:
        tracker = ColdStartTracker(process_age=lambda: 0.25, instance_id=f"env-{next(self._ids)}")

        def business(event: Any, context: Any) -> dict[str, Any]:
            with self._lock:
                self.handled_by_business += 1
            return _business_handler(event, context)

        return warm_guard(tracker=tracker, sleep=lambda _: None)(business)

    def invoke(self, target: str, payload: bytes) -> InvokeAnswer:
        event = json.loads(payload)
        with self._lock:
            self.calls.append((target, event))
            throttled = self.limit is not None and self._in_flight >= self.limit
            environment = None
            if not throttled:
                self._in_flight += 1
                environment = self._idle.pop() if self._idle else self._environment()
        self.arrivals.wait()
        if environment is None:
            raise InvokeThrottledError("ReservedFunctionConcurrentInvocationLimitExceeded")
        try:
            if target in self.fail:
                raise InvokeFailedError(self.fail[target], "injected")
            if target in self.function_error:
                error = {"errorType": "Boom", "errorMessage": "crashed"}
                return InvokeAnswer(json.dumps(error).encode(), "Unhandled", "7")
            if target in self.answer_as_business:
                return InvokeAnswer(json.dumps(_business_handler(event, None)).encode(), None, "7")
            answer = environment(event, _Context())
            return InvokeAnswer(json.dumps(answer).encode(), None, "7")
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.append(environment)
