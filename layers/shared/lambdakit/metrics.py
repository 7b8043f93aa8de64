"""Metric names lambdakit emits, and the sink and logger protocols it reports through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CIRCUIT_CLOSED",
    "CIRCUIT_OPENED",
    "COLD_START",
    "REAL_INVOCATIONS",
    "TOOLKIT_METRICS",
    "UPSTREAM_RETRIES",
    "WARMING_PINGS",
    "InMemoryMetricSink",
    "MetricSink",
    "NullMetricSink",
    "WarningLogger",
]

COLD_START: Final = "ColdStart"
REAL_INVOCATIONS: Final = "RealInvocations"
WARMING_PINGS: Final = "WarmingPings"
UPSTREAM_RETRIES: Final = "UpstreamRetries"
CIRCUIT_OPENED: Final = "CircuitOpened"
CIRCUIT_CLOSED: Final = "CircuitClosed"

# Every metric lambdakit emits; vulnstats.metrics adds them to the product's catalogue.
TOOLKIT_METRICS: Final = frozenset(
    {COLD_START, REAL_INVOCATIONS, WARMING_PINGS, UPSTREAM_RETRIES, CIRCUIT_OPENED, CIRCUIT_CLOSED}
)


class MetricSink(Protocol):
    """Where lambdakit reports count metrics: adapters wrap Powertools Metrics; tests use fakes."""

    def add(self, name: str, value: float = 1.0) -> None:
        """Record ``value`` (a count) for metric ``name``; may buffer until ``flush``."""
        ...

    def flush(self) -> None:
        """Publish what ``add`` buffered (the warm guard calls it to publish a ping's count)."""
        ...


class WarningLogger(Protocol):
    """What lambdakit logs through: a ``logging.Logger`` or a Powertools ``Logger`` both fit."""

    def warning(
        self, msg: object, *args: object, extra: Mapping[str, object] | None = None
    ) -> None:
        """Log ``msg`` at warning level with structured ``extra`` keys."""
        ...


class NullMetricSink:
    """A sink that drops everything: the default when no sink is given."""

    __slots__ = ()

    def add(self, name: str, value: float = 1.0) -> None:
        """Drop the metric."""

    def flush(self) -> None:
        """Nothing to publish."""


class InMemoryMetricSink:
    """A sink that keeps every metric in a list: for tests and local runs."""

    __slots__ = ("flushes", "recorded")

    def __init__(self) -> None:
        """Start with no metrics and no flush."""
        self.recorded: list[tuple[str, float]] = []
        self.flushes = 0

    def add(self, name: str, value: float = 1.0) -> None:
        """Append ``(name, value)`` to ``recorded``."""
        self.recorded.append((name, value))

    def flush(self) -> None:
        """Count the flush."""
        self.flushes += 1

    def total(self, name: str) -> float:
        """Sum of the values recorded for ``name``."""
        return sum(value for metric, value in self.recorded if metric == name)
