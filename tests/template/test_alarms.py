"""The alarms fire on the thresholds the design fixes, and every one notifies the alarm topic."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import Template, deploy_view
from vulnstats.metrics import NAMESPACE_DEFAULT, all_custom_metrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

TOPIC: Final = {"Ref": "AlarmTopic"}
SYNC: Final = {"Ref": "SyncFunction"}
# The five alarms of the sync function, exactly as the design states them.
SYNC_ALARMS: Final[dict[str, dict[str, Any]]] = {
    "SyncErrorsAlarm": {
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": SYNC}],
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    },
    "SyncThrottlesAlarm": {
        "Namespace": "AWS/Lambda",
        "MetricName": "Throttles",
        "Dimensions": [{"Name": "FunctionName", "Value": SYNC}],
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 5,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    },
    "SyncDurationAlarm": {
        "Namespace": "AWS/Lambda",
        "MetricName": "Duration",
        "Dimensions": [{"Name": "FunctionName", "Value": SYNC}],
        "Statistic": "Average",
        "Period": 300,
        "EvaluationPeriods": 2,
        "Threshold": 600000,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    },
    "SyncConcurrencyAlarm": {
        "Namespace": "AWS/Lambda",
        "MetricName": "ConcurrentExecutions",
        "Dimensions": [{"Name": "FunctionName", "Value": SYNC}],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 2,
        "Threshold": 4,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    },
    "DeadLetterQueueAlarm": {
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
        ],
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    },
}
AWS_METRICS: Final = {
    "AWS/Lambda": {"Errors", "Throttles", "Duration", "ConcurrentExecutions", "Invocations"},
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateAgeOfOldestMessage",
    },
    "AWS/ApiGateway": {"Latency", "IntegrationLatency", "Count", "4XXError", "5XXError"},
    "LambdaInsights": {"init_duration", "memory_utilization"},
}


def sync_alarm_problems(view: Deployed) -> list[str]:
    """Differences between the sync function's alarms and the design (empty when they agree)."""
    problems: list[str] = []
    for logical_id, expected in SYNC_ALARMS.items():
        if logical_id not in view.resources:
            problems.append(f"{logical_id} missing")
            continue
        actual = view.properties(logical_id)
        for key, value in expected.items():
            got: Any = actual.get(key)
            numeric = key in ("Threshold", "Period", "EvaluationPeriods") and got is not None
            same = float(got) == float(value) if numeric else got == value
            if not same:
                problems.append(f"{logical_id}.{key} is {got!r}, expected {value!r}")
        if actual.get("AlarmActions") != [TOPIC]:
            problems.append(f"{logical_id} does not notify the alarm topic")
    return problems


def _metrics_of(alarm: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric) pairs an alarm watches, metric math included."""
    if "MetricName" in alarm:
        return [(alarm["Namespace"], alarm["MetricName"])]
    return [
        (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
        for query in alarm["Metrics"]
        if "MetricStat" in query
    ]


def test_the_five_sync_alarms_have_the_designed_thresholds(
    deployed: Callable[..., Deployed],
) -> None:
    assert sync_alarm_problems(deployed()) == []


@pytest.mark.parametrize(
    ("logical_id", "key", "wrong"),
    [
        ("SyncErrorsAlarm", "Threshold", 2),
        ("SyncThrottlesAlarm", "ComparisonOperator", "GreaterThanThreshold"),
        ("SyncDurationAlarm", "EvaluationPeriods", 1),
        ("SyncConcurrencyAlarm", "Statistic", "Average"),
        ("DeadLetterQueueAlarm", "AlarmActions", []),
    ],
)
def test_a_wrong_sync_alarm_is_caught(
    translated: Template, logical_id: str, key: str, wrong: object
) -> None:
    broken = copy.deepcopy(translated)
    broken["Resources"][logical_id]["Properties"][key] = wrong

    assert sync_alarm_problems(deploy_view(broken)) != []


def test_every_alarm_notifies_the_topic_on_alarm_and_on_recovery(
    deployed: Callable[..., Deployed],
) -> None:
    alarms = deployed(AlarmEmail="ops@example.com").of_type("AWS::CloudWatch::Alarm")

    assert len(alarms) >= 12
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [TOPIC], logical_id
        assert alarm["Properties"]["OKActions"] == [TOPIC], logical_id


def test_alarms_watch_only_metrics_the_stack_emits(deployed: Callable[..., Deployed]) -> None:
    for logical_id, alarm in deployed().of_type("AWS::CloudWatch::Alarm").items():
        for namespace, metric in _metrics_of(alarm["Properties"]):
            if namespace == NAMESPACE_DEFAULT:
                assert metric in all_custom_metrics(), (logical_id, metric)
            else:
                assert metric in AWS_METRICS.get(namespace, set()), (logical_id, namespace, metric)


def test_api_latency_alarm_watches_p99_above_one_second(deployed: Callable[..., Deployed]) -> None:
    alarm = deployed().properties("ApiLatencyAlarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert alarm["ExtendedStatistic"] == "p99"
    assert float(alarm["Threshold"]) == 1000
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "ApiName": "vulnstats-test-api",
        "Stage": "v1",
    }


@pytest.mark.parametrize(
    ("logical_id", "numerator", "denominator"),
    [
        ("Api5xxRateAlarm", ("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Count")),
    ],
)
def test_rate_alarms_divide_the_right_metrics(
    deployed: Callable[..., Deployed],
    logical_id: str,
    numerator: tuple[str, str],
    denominator: tuple[str, str],
) -> None:
    alarm = deployed().properties(logical_id)
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    (result,) = [query for query in queries.values() if query.get("ReturnData", True)]
    metric_of = {
        qid: (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"])
        for qid, q in queries.items()
        if "MetricStat" in q
    }
    top = next(qid for qid, metric in metric_of.items() if metric == numerator)
    bottom = next(qid for qid, metric in metric_of.items() if metric == denominator)

    assert f"{top} / {bottom}" in result["Expression"]
    assert all(q.get("ReturnData") is False for q in queries.values() if "MetricStat" in q)


def test_cold_start_rate_divides_cold_starts_by_invocations_net_of_warming_pings(
    deployed: Callable[..., Deployed],
) -> None:
    alarm = deployed().properties("ApiColdStartRateAlarm")
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    metric_of = {
        qid: (
            q["MetricStat"]["Metric"]["Namespace"],
            q["MetricStat"]["Metric"]["MetricName"],
            {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]},
        )
        for qid, q in queries.items()
        if "MetricStat" in q
    }
    by_metric = {(ns, name): qid for qid, (ns, name, _) in metric_of.items()}
    cold = by_metric[NAMESPACE_DEFAULT, "ColdStart"]
    invocations = by_metric["AWS/Lambda", "Invocations"]
    pings = by_metric[NAMESPACE_DEFAULT, "WarmingPings"]
    assert metric_of[invocations][2] == {"FunctionName": {"Ref": "ApiFunction"}}
    assert metric_of[pings][2] == metric_of[cold][2] == {"service": "api"}
    # real invocations: Lambda's count minus the pings (an interval without pings counts 0)
    (real,) = [
        qid
        for qid, q in queries.items()
        if q.get("Expression", "").replace(" ", "") == f"{invocations}-FILL({pings},0)"
    ]
    (result,) = [q for q in queries.values() if q.get("ReturnData", True)]
    assert f"/ {real}" in result["Expression"]
    assert cold in result["Expression"]
    assert sum(1 for q in queries.values() if q.get("ReturnData", True)) == 1


def test_api_function_errors_alarm(deployed: Callable[..., Deployed]) -> None:
    alarm = deployed().properties("ApiErrorsAlarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ApiFunction"}}]


def test_freshness_alarm_fires_after_26_hours_without_a_successful_sync(
    deployed: Callable[..., Deployed],
) -> None:
    alarm = deployed().properties("DataFreshnessAlarm")

    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE_DEFAULT, "SyncSuccess")
    assert alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert float(alarm["Threshold"]) == 1
    assert int(alarm["Period"]) * int(alarm["EvaluationPeriods"]) == 26 * 3600
    assert int(alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])) == int(
        alarm["EvaluationPeriods"]
    )
    assert alarm["TreatMissingData"] == "breaching"


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_insights_alarms_exist_only_with_insights(
    deployed: Callable[..., Deployed], enabled: str
) -> None:
    alarms = deployed(LambdaInsightsEnabled=enabled).of_type("AWS::CloudWatch::Alarm")
    insights = {
        (
            alarm["Properties"].get("MetricName"),
            alarm["Properties"]["Dimensions"][0]["Value"]["Ref"],
        )
        for alarm in alarms.values()
        if alarm["Properties"].get("Namespace") == "LambdaInsights"
    }

    expected = {
        ("init_duration", "ApiFunction"),
        ("memory_utilization", "SyncFunction"),
        ("memory_utilization", "ApiFunction"),
    }
    assert insights == (expected if enabled == "true" else set())


def test_throttling_alarm_adds_gateway_429s_and_function_throttles_per_minute(
    deployed: Callable[..., Deployed],
) -> None:
    # given the stack with a custom threshold
    view = deployed(ApiThrottlesPerMinuteThreshold="250")
    alarm = view.properties("ApiThrottlingAlarm")
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    # then it sums, per minute, the 429s the access log filter counts and the API's throttles
    assert {m["Id"]: m.get("Expression") for m in alarm["Metrics"] if m["ReturnData"]} == {
        "throttled": "FILL(gateway, 0) + FILL(function, 0)"
    }
    assert stats["gateway"]["Metric"]["MetricName"] == "ApiThrottledRequests"
    assert stats["function"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "ApiFunction"}}
    ]
    assert {s["Period"] for s in stats.values()} == {60}
    assert (str(alarm["Threshold"]), alarm["ComparisonOperator"]) == ("250", "GreaterThanThreshold")
    # and the filter feeding it counts 429 lines of the access log into that metric
    metric_filter = view.properties("ApiThrottledRequestsFilter")
    transformation = metric_filter["MetricTransformations"][0]
    assert metric_filter["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}
    assert metric_filter["FilterPattern"] == '{ $.status = "429" }'
    assert (transformation["MetricName"], transformation["MetricValue"]) == (
        "ApiThrottledRequests",
        "1",
    )
    assert stats["gateway"]["Metric"]["Dimensions"] == [{"Name": "status", "Value": "429"}]


def test_throttling_alarm_threshold_defaults_to_100_per_minute(sam_template: Template) -> None:
    assert sam_template["Parameters"]["ApiThrottlesPerMinuteThreshold"]["Default"] == 100
