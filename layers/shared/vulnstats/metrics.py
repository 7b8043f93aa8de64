"""Custom CloudWatch metric names this product emits: one list for code, dashboard and alarms."""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_METRICS",
    "NAMESPACE_DEFAULT",
    "SYNC_METRICS",
    "TOOLKIT_METRICS",
    "WARMER_METRICS",
    "all_custom_metrics",
]

NAMESPACE_DEFAULT: Final = "VulnStats"

# Emitted by lambdakit on every function (pings excluded).
TOOLKIT_METRICS: Final = frozenset(
    {
        "ColdStart",  # 1 on the first real invocation of an execution environment
        "RealInvocations",  # every invocation that is not a warming ping
        "WarmingPings",  # warming pings answered by the warm guard
        "UpstreamRetries",  # retries made by lambdakit.retry
        "CircuitOpened",  # circuit breaker state change to open
        "CircuitClosed",  # circuit breaker state change to closed
    }
)

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

WARMER_METRICS: Final = frozenset(
    {
        "WarmerEnvironmentsReached",
        "WarmerColdEnvironments",
        "WarmerFailures",
        "WarmerThrottles",
        "WarmerDurationMs",
    }
)


def all_custom_metrics() -> frozenset[str]:
    """Every custom metric name the stack may emit under its namespace."""
    return TOOLKIT_METRICS | SYNC_METRICS | API_METRICS | WARMER_METRICS
