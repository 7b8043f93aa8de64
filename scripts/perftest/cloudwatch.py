"""The metrics mode: what CloudWatch recorded for a function over a UTC window.

One GetMetricData call per group, the period equal to the whole window, so each figure is one
value over the window (CloudWatch computes the percentiles itself). Lambda publishes its
metrics a minute or more after the invocations: the window ends at the last whole minute.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["QUERIES", "fetch_metrics", "utc_window"]

# (id, namespace, metric, stat, unit shown in the report)
QUERIES: Final = (
    ("duration_p50_ms", "AWS/Lambda", "Duration", "p50"),
    ("duration_p90_ms", "AWS/Lambda", "Duration", "p90"),
    ("duration_p99_ms", "AWS/Lambda", "Duration", "p99"),
    ("invocations", "AWS/Lambda", "Invocations", "Sum"),
    ("errors", "AWS/Lambda", "Errors", "Sum"),
    ("throttles", "AWS/Lambda", "Throttles", "Sum"),
    ("concurrent_executions_max", "AWS/Lambda", "ConcurrentExecutions", "Maximum"),
    ("insights_init_duration_ms_avg", "LambdaInsights", "init_duration", "Average"),
    ("insights_init_duration_ms_max", "LambdaInsights", "init_duration", "Maximum"),
    ("insights_memory_utilization_pct_max", "LambdaInsights", "memory_utilization", "Maximum"),
    ("insights_used_memory_mb_max", "LambdaInsights", "used_memory_max", "Maximum"),
)


def utc_window(minutes: int, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC: ``end`` is ``now`` floored to the minute, ``start`` minutes before."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    end = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return end - dt.timedelta(minutes=minutes), end


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(
    query: tuple[str, str, str, str], *, name: str, qualifier: str | None, period: int
) -> Any:
    query_id, namespace, metric, stat = query
    if namespace == "LambdaInsights":
        dimensions = [{"Name": "function_name", "Value": name}]
    else:
        dimensions = [{"Name": "FunctionName", "Value": name}]
        if qualifier:  # Lambda publishes an alias's or version's own series under Resource
            dimensions.append({"Name": "Resource", "Value": f"{name}:{qualifier}"})
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": dimensions,
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def fetch_metrics(
    client: Any,
    function_name: str,
    minutes: int,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    local: bool = False,
    qualifier: str | None = None,
) -> dict[str, Any]:
    """The metrics block of a function's report (values None where CloudWatch has none)."""
    start, end = utc_window(minutes, now())
    period = minutes * 60
    values: dict[str, float | None] = {q[0]: None for q in QUERIES}
    problems: list[str] = []
    # Percentiles in their own call: an emulator that cannot compute them loses only them.
    groups = (
        [q for q in QUERIES if q[3].startswith("p")],
        [q for q in QUERIES if not q[3].startswith("p")],
    )
    for group in groups:
        try:
            answer = client.get_metric_data(
                MetricDataQueries=[
                    _query(q, name=function_name, qualifier=qualifier, period=period) for q in group
                ],
                StartTime=start,
                EndTime=end,
            )
        except ClientError as error:
            err = error.response.get("Error", {})
            problems.append(
                f"GetMetricData ({group[0][2]}...): {err.get('Code')}: {err.get('Message')}"
            )
            continue
        except BotoCoreError as error:
            problems.append(f"GetMetricData: {error}")
            continue
        for result in answer.get("MetricDataResults", []):
            found = result.get("Values") or []
            values[str(result["Id"])] = float(found[0]) if found else None
    datapoints = sum(v is not None for v in values.values())
    if problems:
        message = "; ".join(problems)
    elif datapoints == 0 and local:
        message = (
            "the local stage has no CloudWatch figures in this window: it publishes only "
            "AWS/Lambda Invocations and Errors, from the REPORT lines of finished minutes "
            "(the call worked and returned no datapoints)"
        )
    elif datapoints == 0:
        message = "no datapoints in the window (no traffic, or not yet published)"
    else:
        message = f"{datapoints} of {len(values)} figures have datapoints"
    return {
        "available": datapoints > 0,
        "window": {"start": _iso(start), "end": _iso(end), "period_s": period},
        "function_name": function_name,
        "values": values,
        "message": message,
    }
