"""A handler decorator that answers warming pings at once, before any other work.

Warming ping payload (the whole event; only ``warmer`` is required)::

    {"warmer": true, "fanout": 5, "hold_ms": 150, "ping_id": "2026-11-22T05:00:00Z#3"}

- ``warmer``: the JSON literal ``true``; any other event goes to the handler untouched.
- ``fanout``: how many pings the warmer sends concurrently (default 1). When above 1 the guard
  holds the environment for ``hold_ms`` before answering, so that the concurrent pings cannot
  all be served by one environment one after the other and land on ``fanout`` distinct ones.
- ``hold_ms``: the hold, default 100 when ``fanout`` > 1; capped by the guard's ``max_hold_ms``
  and by the invocation's remaining time. Ignored when ``fanout`` is 1.
- ``ping_id``: any string, echoed back for correlation.

Answer (JSON-serialisable)::

    {"warmed": true, "cold": true, "instance_id": "4f0c...", "init_duration_ms": 412.5,
     "function_name": "api", "function_version": "$LATEST", "app_version": "1.2.0",
     "ping_id": "...", "fanout": 5, "held_ms": 150.0}

``cold`` is true when the ping was the environment's first call (it paid for init); such an
environment's first real invocation is then not counted as a cold start (see
``lambdakit.coldstart``). Malformed ``fanout``/``hold_ms`` values are treated as absent: a ping
is always answered. Pings never reach the wrapped handler, so put the guard outermost, above
Powertools' ``log_metrics``/``inject_lambda_context``: a ping then emits no business metric and
no cold-start metric of Powertools (leave ``capture_cold_start_metric`` off and count
``ColdStart`` here instead).
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any, Final, overload

from lambdakit.coldstart import ColdStartTracker, get_tracker
from lambdakit.metrics import COLD_START, REAL_INVOCATIONS, WARMING_PINGS, MetricSink

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_HOLD_MS", "is_warming_ping", "ping_event", "warm_guard"]

DEFAULT_HOLD_MS: Final = 100
# Left to the runtime after a hold, so a hold can never time the invocation out.
_HOLD_MARGIN_MS: Final = 200


def is_warming_ping(event: object) -> bool:
    """Whether ``event`` is a warming ping (a dict whose ``warmer`` is ``True``)."""
    return type(event) is dict and event.get("warmer") is True


def ping_event(*, fanout: int = 1, hold_ms: int = DEFAULT_HOLD_MS, ping_id: str = "") -> bytes:
    """The JSON payload of one warming ping, as the guard reads it (see the module docstring)."""
    event: dict[str, Any] = {"warmer": True, "fanout": fanout, "hold_ms": hold_ms}
    if ping_id:
        event["ping_id"] = ping_id
    return json.dumps(event, separators=(",", ":")).encode()


def _positive_int(value: object, default: int) -> int:
    if type(value) is int and value > 0:
        return value
    return default


def _answer(
    event: dict[str, Any],
    context: Any,
    *,
    tracker: ColdStartTracker,
    metrics: MetricSink | None,
    app_version: str | None,
    sleep: Callable[[float], None],
    max_hold_ms: int,
) -> dict[str, Any]:
    cold = tracker.record_ping()
    fanout = _positive_int(event.get("fanout"), 1)
    held_ms = 0.0
    if fanout > 1:
        hold = min(_positive_int(event.get("hold_ms"), DEFAULT_HOLD_MS), max_hold_ms)
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            hold = min(hold, int(remaining()) - _HOLD_MARGIN_MS)
        if hold > 0:
            sleep(hold / 1000.0)
            held_ms = float(hold)
    ping_id = event.get("ping_id")
    if metrics is not None:
        metrics.add(WARMING_PINGS, 1.0)
        metrics.flush()
    return {
        "warmed": True,
        "cold": cold,
        "instance_id": tracker.instance_id,
        "init_duration_ms": tracker.init_duration_ms,
        "function_name": _str_or_none(getattr(context, "function_name", None)),
        "function_version": _str_or_none(getattr(context, "function_version", None)),
        "app_version": app_version,
        "ping_id": ping_id if isinstance(ping_id, str) else None,
        "fanout": fanout,
        "held_ms": held_ms,
    }


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@overload
def warm_guard[F: Callable[..., Any]](handler: F, /) -> F: ...
@overload
def warm_guard[F: Callable[..., Any]](
    handler: None = None,
    /,
    *,
    metrics: MetricSink | None = None,
    app_version: str | None = None,
    tracker: ColdStartTracker | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_hold_ms: int = 1000,
) -> Callable[[F], F]: ...
def warm_guard(
    handler: Callable[..., Any] | None = None,
    /,
    *,
    metrics: MetricSink | None = None,
    app_version: str | None = None,
    tracker: ColdStartTracker | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_hold_ms: int = 1000,
) -> Any:
    """Wrap a ``handler(event, context)`` so warming pings are answered before it runs.

    Use as ``@warm_guard`` or ``@warm_guard(metrics=..., app_version=...)``, outermost. A ping
    gets the answer described in the module docstring and counts ``WarmingPings`` (added then
    flushed at once). Any other event is recorded as a real invocation (``RealInvocations``,
    plus ``ColdStart`` on the environment's cold start) and passed to the handler; the metrics
    are only added, for the handler's Powertools ``log_metrics`` to publish. ``tracker``
    defaults to the environment's (``lambdakit.coldstart.get_tracker``); ``sleep`` is the hold.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            state = tracker if tracker is not None else get_tracker()
            if type(event) is dict and event.get("warmer") is True:
                return _answer(
                    event,
                    context,
                    tracker=state,
                    metrics=metrics,
                    app_version=app_version,
                    sleep=sleep,
                    max_hold_ms=max_hold_ms,
                )
            cold = state.record_invocation()
            if metrics is not None:
                metrics.add(REAL_INVOCATIONS, 1.0)
                if cold:
                    metrics.add(COLD_START, 1.0)
            return fn(event, context, *args, **kwargs)

        return guarded

    if handler is not None:
        return decorate(handler)
    return decorate
