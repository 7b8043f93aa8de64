"""The optional metrics forwarder: nothing by default; with Datadog, subscribed to EMF lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

from localstage.log_subscriptions import matches_emf_filter
from tests.template.cfnview import parameter_values, rule_failures

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed, Template

pytestmark = [pytest.mark.template]

SECRET: Final = "arn:aws:secretsmanager:us-east-1:123456789012:secret:datadog-AbCdEf"
FORWARDER_RESOURCES: Final = {
    "MetricsForwarderFunction",
    "MetricsForwarderLogGroup",
    "MetricsForwarderDeadLetterQueue",
    "MetricsForwarderLogsPermission",
    "MetricsForwarderErrorsAlarm",
}
EMF_LINE: Final = (
    '{"_aws":{"Timestamp":1796530603789,"CloudWatchMetrics":[{"Namespace":"VulnStats",'
    '"Dimensions":[["service"]],"Metrics":[{"Name":"RealInvocations","Unit":"Count"}]}]},'
    '"service":"api","RealInvocations":[1.0]}'
)


def _with_datadog(deployed: Callable[..., Deployed], **more: str) -> Deployed:
    return deployed(MetricsForwarder="datadog", DatadogApiKeySecretArn=SECRET, **more)


def test_by_default_there_is_no_forwarder_and_no_subscription(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()

    assert not FORWARDER_RESOURCES & set(view.resources)
    assert view.of_type("AWS::Logs::SubscriptionFilter") == {}


def test_with_datadog_every_function_log_group_is_subscribed_with_the_emf_filter(
    deployed: Callable[..., Deployed],
) -> None:
    # given the stack with the Datadog forwarder
    view = _with_datadog(deployed)
    filters = view.of_type("AWS::Logs::SubscriptionFilter")
    # then the three function log groups (not the forwarder's own) send their EMF lines to it
    groups = {f["Properties"]["LogGroupName"]["Ref"] for f in filters.values()}
    assert groups == {"SyncLogGroup", "ApiLogGroup", "WarmerLogGroup"}
    for subscription in filters.values():
        props = subscription["Properties"]
        assert props["DestinationArn"] == {"Fn::GetAtt": ["MetricsForwarderFunction", "Arn"]}
        assert props["FilterPattern"] == "{ $._aws.Timestamp > 0 }"
        assert subscription["DependsOn"] == "MetricsForwarderLogsPermission"
    assert set(view.resources) >= FORWARDER_RESOURCES
    # and the local stage's emulation keeps the same lines the pattern keeps
    assert matches_emf_filter(EMF_LINE)
    assert not matches_emf_filter('{"level":"INFO","message":"run complete"}')


def test_without_the_warmer_its_log_group_is_not_subscribed(
    deployed: Callable[..., Deployed],
) -> None:
    view = _with_datadog(deployed, WarmingStrategy="none")

    groups = {
        f["Properties"]["LogGroupName"]["Ref"]
        for f in view.of_type("AWS::Logs::SubscriptionFilter").values()
    }
    assert groups == {"SyncLogGroup", "ApiLogGroup"}


def test_forwarder_posts_to_the_sites_intake_with_its_own_dlq_and_only_its_secret(
    deployed: Callable[..., Deployed],
) -> None:
    view = _with_datadog(deployed, DatadogSite="datadoghq.eu")
    function = view.properties("MetricsForwarderFunction")
    variables = function["Environment"]["Variables"]

    assert variables["DATADOG_API_URL"] == "https://api.datadoghq.eu"
    assert variables["DATADOG_API_KEY_SECRET_ARN"] == SECRET
    assert variables["FORWARDER_DLQ_URL"] == {"Ref": "MetricsForwarderDeadLetterQueue"}
    assert function["DeadLetterConfig"]["TargetArn"] == {
        "Fn::GetAtt": ["MetricsForwarderDeadLetterQueue", "Arn"]
    }
    statements = [
        statement
        for policy in view.properties("MetricsForwarderFunctionRole")["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    secret_reads = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert [s["Resource"] for s in secret_reads] == [SECRET]


def test_forwarder_errors_alarm_counts_crashes_and_points_kept_for_replay(
    deployed: Callable[..., Deployed],
) -> None:
    alarm = _with_datadog(deployed).properties("MetricsForwarderErrorsAlarm")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}

    assert metrics["crashes"]["MetricStat"]["Metric"]["MetricName"] == "Errors"
    assert metrics["kept"]["MetricStat"]["Metric"]["MetricName"] == "ForwarderPointsDeadLettered"
    assert metrics["failures"]["Expression"] == "FILL(crashes, 0) + FILL(kept, 0)"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )


def test_datadog_without_an_api_key_secret_is_refused_before_deploying(
    sam_template: Template,
) -> None:
    def failures(**overrides: str) -> list[str]:
        values = parameter_values(sam_template, {"VantaSecretArn": SECRET, **overrides})
        return [f for f in rule_failures(sam_template, values) if "Datadog" in f]

    assert failures(MetricsForwarder="datadog")
    assert "DatadogApiKeySecretArn is empty" in failures(MetricsForwarder="datadog")[0]
    assert failures(MetricsForwarder="datadog", DatadogApiKeySecretArn=SECRET) == []
    assert failures() == []
