"""What one warmer invocation asks for (from its event), and the metrics of what it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambdakit.warmer import MAX_FANOUT
from vulnstats.metrics import (
    WARMER_COLD_ENVIRONMENTS,
    WARMER_DURATION_MS,
    WARMER_ENVIRONMENTS_REACHED,
    WARMER_FAILURES,
    WARMER_THROTTLES,
)

if TYPE_CHECKING:
    from lambdakit.warmer import WarmingReport

__all__ = ["InvalidWarmerEventError", "WarmRequest", "metric_values", "parse_event"]


class InvalidWarmerEventError(ValueError):
    """The event is neither a Scheduled Event nor a warmer schedule Input; says what is wrong."""


@dataclass(frozen=True, slots=True)
class WarmRequest:
    """One run: which schedule asked, how many concurrent pings per target, the run's id."""

    schedule: str
    concurrency: int
    run_id: str


def parse_event(event: object, *, default_concurrency: int, request_id: str) -> WarmRequest:
    """Read the event of a schedule.

    Two shapes are accepted: EventBridge's ``Scheduled Event`` (N is ``default_concurrency``,
    the schedule is the rule's name), or the Input a template schedule sets,
    ``{"schedule": "peak", "concurrency": 5}`` (``concurrency`` optional, 1..MAX_FANOUT).
    """
    if not isinstance(event, dict):
        raise InvalidWarmerEventError("event: expected a JSON object")
    if event.get("detail-type") == "Scheduled Event":
        resources = event.get("resources")
        rule = resources[0] if isinstance(resources, list) and resources else "scheduled"
        name = str(rule).rpartition("/")[2] or "scheduled"
        return WarmRequest(name, default_concurrency, request_id)
    schedule = event.get("schedule")
    if not isinstance(schedule, str) or not schedule.strip():
        raise InvalidWarmerEventError(
            "event: expected an EventBridge 'Scheduled Event' or a warmer Input "
            '{"schedule": "<name>", "concurrency": <1..100>}'
        )
    concurrency: Any = event.get("concurrency", default_concurrency)
    if type(concurrency) is not int or not 1 <= concurrency <= MAX_FANOUT:
        raise InvalidWarmerEventError(
            f"concurrency: expected an integer from 1 to {MAX_FANOUT}, got {concurrency!r}"
        )
    return WarmRequest(schedule.strip(), concurrency, request_id)


def metric_values(report: WarmingReport) -> dict[str, float]:
    """The run's metrics by name (counts, and the duration in milliseconds)."""
    return {
        WARMER_ENVIRONMENTS_REACHED: float(report.reached),
        WARMER_COLD_ENVIRONMENTS: float(report.cold),
        WARMER_FAILURES: float(report.failures),
        WARMER_THROTTLES: float(report.throttles),
        WARMER_DURATION_MS: round(report.duration_ms, 3),
    }
