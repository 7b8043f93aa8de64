"""The dashboard body is valid dashboard JSON and charts only metrics the stack emits."""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import Template, deploy_view
from vulnstats.metrics import NAMESPACE_DEFAULT, all_custom_metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

AWS_METRICS: Final = {
    "AWS/Lambda": {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"},
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateAgeOfOldestMessage",
    },
    "AWS/ApiGateway": {"Latency", "IntegrationLatency", "Count", "4XXError", "5XXError"},
    "LambdaInsights": {"init_duration", "memory_utilization"},
}
# What the design asks the dashboard to show: (namespace, metric) pairs, plus statistics.
REQUIRED: Final = {
    ("AWS/Lambda", "Invocations"),
    (NAMESPACE_DEFAULT, "WarmingPings"),
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Throttles"),
    ("AWS/Lambda", "Duration"),
    ("LambdaInsights", "init_duration"),
    (NAMESPACE_DEFAULT, "ColdStart"),
    ("AWS/Lambda", "ConcurrentExecutions"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    (NAMESPACE_DEFAULT, "RecordsFetched"),
    (NAMESPACE_DEFAULT, "SyncSuccess"),
    ("AWS/ApiGateway", "Latency"),
    ("AWS/ApiGateway", "5XXError"),
}
_PLACEHOLDER: Final = re.compile(r"\$\{([^}]+)\}")


def dashboard_body(view: Deployed) -> dict[str, Any]:
    """The dashboard JSON with the remaining `${Resource}` placeholders replaced by sample names."""
    text = view.properties("Dashboard")["DashboardBody"]
    assert isinstance(text, str), "DashboardBody must be one Fn::Sub string"
    body: dict[str, Any] = json.loads(_PLACEHOLDER.sub(lambda m: f"sample-{m.group(1)}", text))
    return body


def metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    """Every metric row of every metric widget (expression rows included)."""
    return [
        row
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for row in widget["properties"]["metrics"]
    ]


def dashboard_problems(body: dict[str, Any]) -> list[str]:
    """Rows that are malformed or name a metric the stack does not emit."""
    problems: list[str] = []
    for row in metric_rows(body):
        if len(row) == 1 and isinstance(row[0], dict) and "expression" in row[0]:
            continue
        fields = row[:-1] if isinstance(row[-1], dict) else row
        if len(fields) < 2 or len(fields) % 2 != 0 or not all(isinstance(f, str) for f in fields):
            problems.append(f"malformed row (dimensions belong inside the array): {row}")
            continue
        namespace, metric = fields[0], fields[1]
        known: frozenset[str] | set[str] = (
            all_custom_metrics()
            if namespace == NAMESPACE_DEFAULT
            else AWS_METRICS.get(namespace, set())
        )
        if metric not in known:
            problems.append(f"{namespace}/{metric} is not emitted by the stack")
        if len(fields) == 2:
            problems.append(f"{namespace}/{metric} has no dimension")
    return problems


def test_dashboard_body_is_valid_json_of_metric_widgets(deployed: Callable[..., Deployed]) -> None:
    body = dashboard_body(deployed())

    assert body["widgets"]
    for widget in body["widgets"]:
        assert widget["type"] == "metric"
        assert {"x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["properties"]["region"] == "us-east-1"
        assert widget["properties"]["title"]


def test_dashboard_charts_only_metrics_the_stack_emits(deployed: Callable[..., Deployed]) -> None:
    assert dashboard_problems(dashboard_body(deployed())) == []


def test_dashboard_covers_what_operations_needs(deployed: Callable[..., Deployed]) -> None:
    rows = metric_rows(dashboard_body(deployed()))
    charted = {(row[0], row[1]) for row in rows if isinstance(row[0], str)}
    statistics = {
        row[-1].get("stat")
        for row in rows
        if len(row) > 2 and row[1] == "Duration" and isinstance(row[-1], dict)
    }
    expressions = [row[0]["expression"] for row in rows if isinstance(row[0], dict)]

    assert charted >= REQUIRED
    assert {"p50", "p90", "p99"} <= statistics
    # invocations net of warming pings is a metric-math expression over both series
    assert any("-" in expression for expression in expressions)


def test_dashboard_expressions_refer_to_series_of_their_widget(
    deployed: Callable[..., Deployed],
) -> None:
    for widget in dashboard_body(deployed())["widgets"]:
        rows = widget["properties"]["metrics"]
        ids = {row[-1]["id"] for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            if isinstance(row[0], dict) and "expression" in row[0]:
                used = set(re.findall(r"\b[a-z][a-zA-Z0-9_]*\b", row[0]["expression"]))
                used -= {"m", "e"} | {"if", "fill"}
                assert {name for name in used if re.fullmatch(r"[me]\d+", name)} <= ids


@pytest.mark.parametrize(
    "row",
    [
        ["VulnStats", "NoSuchMetric", "service", "api"],
        ["AWS/Lambda", "Invocations", {"stat": "Sum"}],
        ["AWS/Lambda", "Errors", "FunctionName"],
    ],
)
def test_a_bad_dashboard_row_is_caught(translated: Template, row: list[Any]) -> None:
    broken = copy.deepcopy(translated)
    dashboard = broken["Resources"]["Dashboard"]["Properties"]
    body = json.loads(dashboard["DashboardBody"]["Fn::Sub"])
    body["widgets"][0]["properties"]["metrics"].append(row)
    dashboard["DashboardBody"]["Fn::Sub"] = json.dumps(body)

    assert dashboard_problems(dashboard_body(deploy_view(broken))) != []
