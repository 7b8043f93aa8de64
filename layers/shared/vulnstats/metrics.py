"""Custom CloudWatch metric names this product emits: one list for code, dashboard and alarms."""

from __future__ import annotations

from typing import Final

# Emitted by lambdakit on every function (pings excluded); lambdakit owns the names.
from lambdakit.metrics import TOOLKIT_METRICS

__all__ = [
    "API_METRICS",
    "FORWARDER_BREAKER_OPEN",
    "FORWARDER_METRICS",
    "FORWARDER_POINTS_DEAD_LETTERED",
    "FORWARDER_POINTS_DROPPED",
    "FORWARDER_POINTS_SENT",
    "LOG_METRICS",
    "NAMESPACE_DEFAULT",
    "SYNC_METRICS",
    "TOOLKIT_METRICS",
    "WARMER_COLD_ENVIRONMENTS",
    "WARMER_DURATION_MS",
    "WARMER_ENVIRONMENTS_REACHED",
    "WARMER_FAILURES",
    "WARMER_METRICS",
    "WARMER_THROTTLES",
    "all_custom_metrics",
]

NAMESPACE_DEFAULT: Final = "VulnStats"

SYNC_METRICS: Final = frozenset(
    {
        "RecordsFetched",
        "RecordsWritten",
        "RecordsUnchanged",
        "RecordsDeleted",
        "RecordsQuarantined",
        "PagesFetched",
        "SyncRetries",
        "SyncDurationSeconds",
        "SyncSuccess",  # 1 per successful complete run: the freshness alarm watches it
        "SyncFailure",
    }
)

API_METRICS: Final = frozenset({"ApiRequests", "ApiClientErrors"})

# Emitted by the optional MetricsForwarderFunction, once per invocation.
FORWARDER_POINTS_SENT: Final = "ForwarderPointsSent"  # accepted by the third party
FORWARDER_POINTS_DROPPED: Final = "ForwarderPointsDropped"  # malformed, too late, or refused
FORWARDER_POINTS_DEAD_LETTERED: Final = "ForwarderPointsDeadLettered"  # kept for a replay
FORWARDER_BREAKER_OPEN: Final = "ForwarderBreakerOpen"  # 1 while the circuit is not closed
FORWARDER_METRICS: Final = frozenset(
    {
        FORWARDER_POINTS_SENT,
        FORWARDER_POINTS_DROPPED,
        FORWARDER_POINTS_DEAD_LETTERED,
        FORWARDER_BREAKER_OPEN,
    }
)

# Published by the template's metric filters from log lines, not by the code.
LOG_METRICS: Final = frozenset({"ApiThrottledRequests"})  # API Gateway 429s, access log

# Emitted by the warmer, once per run (all targets together).
WARMER_ENVIRONMENTS_REACHED: Final = "WarmerEnvironmentsReached"  # distinct environments
WARMER_COLD_ENVIRONMENTS: Final = "WarmerColdEnvironments"  # environments the run created
WARMER_FAILURES: Final = "WarmerFailures"  # pings failed (errors, FunctionError, wrong answer)
WARMER_THROTTLES: Final = "WarmerThrottles"  # pings refused with TooManyRequestsException
WARMER_DURATION_MS: Final = "WarmerDurationMs"  # time of the run's fan-out
WARMER_METRICS: Final = frozenset(
    {
        WARMER_ENVIRONMENTS_REACHED,
        WARMER_COLD_ENVIRONMENTS,
        WARMER_FAILURES,
        WARMER_THROTTLES,
        WARMER_DURATION_MS,
    }
)


def all_custom_metrics() -> frozenset[str]:
    """Every custom metric name the stack may emit under its namespace."""
    return (
        TOOLKIT_METRICS
        | SYNC_METRICS
        | API_METRICS
        | WARMER_METRICS
        | LOG_METRICS
        | FORWARDER_METRICS
    )
