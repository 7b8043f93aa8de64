"""The metrics mode asks CloudWatch for whole UTC minutes and survives a refused percentile."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from perftest.cloudwatch import QUERIES, fetch_metrics, utc_window

PARIS = dt.timezone(dt.timedelta(hours=1))


def test_the_window_ends_at_the_last_whole_utc_minute() -> None:
    # given a local time in UTC+1 with seconds
    now = dt.datetime(2026, 12, 4, 0, 30, 45, 123, tzinfo=PARIS)
    start, end = utc_window(60, now)
    # then the window is the previous hour in UTC, on whole minutes
    assert end == dt.datetime(2026, 12, 3, 23, 30, tzinfo=dt.UTC)
    assert start == dt.datetime(2026, 12, 3, 22, 30, tzinfo=dt.UTC)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_window(5, dt.datetime(2026, 12, 4, 0, 0))


class PercentileRefusingCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        stats = {q["MetricStat"]["Stat"] for q in kwargs["MetricDataQueries"]}
        if any(s.startswith("p") for s in stats):
            raise ClientError(
                {"Error": {"Code": "InternalFailure", "Message": "no percentiles"}},
                "GetMetricData",
            )
        return {
            "MetricDataResults": [
                {"Id": q["Id"], "Values": [3.0] if q["Id"] == "errors" else []}
                for q in kwargs["MetricDataQueries"]
            ]
        }


def test_a_refused_percentile_query_keeps_the_other_figures() -> None:
    client = PercentileRefusingCloudWatch()
    now = dt.datetime(2026, 12, 3, 23, 59, 59, tzinfo=dt.UTC)
    result = fetch_metrics(client, "ApiFunction", 15, now=lambda: now)
    # then errors are there, percentiles are None, and the message says why
    assert result["values"]["errors"] == 3.0
    assert result["values"]["duration_p99_ms"] is None
    assert "no percentiles" in result["message"]
    assert result["window"] == {
        "start": "2026-12-03T23:44:00Z",
        "end": "2026-12-03T23:59:00Z",
        "period_s": 900,
    }
    # then every query covers the whole window in one period, by function name
    queries = [q for call in client.calls for q in call["MetricDataQueries"]]
    assert len(queries) == len(QUERIES)
    assert {q["MetricStat"]["Period"] for q in queries} == {900}
    insights = [q for q in queries if q["MetricStat"]["Metric"]["Namespace"] == "LambdaInsights"]
    assert insights[0]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "function_name", "Value": "ApiFunction"}
    ]


def test_an_empty_local_stage_says_it_has_no_figures() -> None:
    class Empty:
        def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
            return {
                "MetricDataResults": [
                    {"Id": q["Id"], "Values": []} for q in kwargs["MetricDataQueries"]
                ]
            }

    result = fetch_metrics(Empty(), "ApiFunction", 60, local=True)
    assert result["available"] is False
    assert "the local stage has no CloudWatch figures" in result["message"]


def test_an_alias_is_measured_by_its_resource_dimension() -> None:
    client = PercentileRefusingCloudWatch()
    fetch_metrics(client, "api", 5, qualifier="live")
    lambda_queries = [
        q
        for call in client.calls
        for q in call["MetricDataQueries"]
        if q["MetricStat"]["Metric"]["Namespace"] == "AWS/Lambda"
    ]
    assert lambda_queries[0]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "api"},
        {"Name": "Resource", "Value": "api:live"},
    ]
