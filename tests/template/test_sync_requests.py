"""The SyncRequests queue in front of the sync: event source, queue, redrive, producers, alarms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

QUEUE_ARN: Final = {"Fn::GetAtt": ["SyncRequestsQueue", "Arn"]}
DLQ_ARN: Final = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
SYNC_TIMEOUT_S: Final = 900


def _statements(view: Deployed, role: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in view.properties(role).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def test_the_sync_consumes_one_request_at_a_time_with_partial_failures(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()
    (mapping,) = view.of_type("AWS::Lambda::EventSourceMapping").values()
    source = mapping["Properties"]

    assert source["EventSourceArn"] == QUEUE_ARN
    assert source["FunctionName"] == {"Ref": "SyncFunction"}
    assert int(source["BatchSize"]) == 1
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda's minimum: one worker for the live run, one answering queued requests at once
    assert source["ScalingConfig"] == {"MaximumConcurrency": 2}
    # the poller may never run more than the function's reserved concurrency allows
    assert int(view.properties("SyncFunction")["ReservedConcurrentExecutions"]) >= 2


def test_the_queue_follows_lambdas_guidance_and_redrives_to_the_dlq(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()
    queue = view.properties("SyncRequestsQueue")

    # at least six times the function timeout plus the batching window (none)
    assert int(view.properties("SyncFunction")["Timeout"]) == SYNC_TIMEOUT_S
    assert int(queue["VisibilityTimeout"]) == 6 * SYNC_TIMEOUT_S
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}
    # the DLQ keeps a message longer than the source queue does
    dlq = view.properties("DeadLetterQueue")
    assert int(queue["MessageRetentionPeriod"]) < int(dlq["MessageRetentionPeriod"])


@pytest.mark.parametrize("customer_managed", ["false", "true"])
def test_the_queue_is_encrypted_with_the_stacks_key(
    deployed: Callable[..., Deployed], customer_managed: str
) -> None:
    view = deployed(CustomerManagedKey=customer_managed)

    assert view.properties("SyncRequestsQueue")["KmsMasterKeyId"] == {"Ref": "OperationsKey"}
    for role in ("SyncFunctionRole", "ApiFunctionRole"):
        kms = [s for s in _statements(view, role) if "kms:GenerateDataKey" in s["Action"]]
        assert kms, role


def test_the_schedule_sends_its_event_to_the_queue_and_nothing_invokes_the_sync_async(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()
    rule = view.properties("SyncScheduleRule")
    (target,) = rule["Targets"]

    assert rule["ScheduleExpression"] == "rate(1 hour)"
    assert target["Arn"] == QUEUE_ARN
    # the EventBridge event itself is the body: a ScheduledTrigger with an id to deduplicate on
    assert "Input" not in target
    assert "InputTransformer" not in target
    assert target["DeadLetterConfig"] == {"Arn": DLQ_ARN}
    (send,) = view.properties("SyncRequestsQueuePolicy")["PolicyDocument"]["Statement"]
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    assert send["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["SyncScheduleRule", "Arn"]
    }
    assert not [lid for lid in view.of_type("AWS::Lambda::Permission") if lid.startswith("Sync")]


def test_producers_send_to_the_queue_they_are_given(deployed: Callable[..., Deployed]) -> None:
    view = deployed()
    for function, actions in (
        ("SyncFunction", {"sqs:SendMessage", "sqs:ChangeMessageVisibility"}),
        ("ApiFunction", {"sqs:SendMessage"}),
    ):
        variables = view.properties(function)["Environment"]["Variables"]
        assert variables["SYNC_QUEUE_URL"] == {"Ref": "SyncRequestsQueue"}, function
        granted = {
            action
            for statement in _statements(view, f"{function}Role")
            if statement.get("Resource") == QUEUE_ARN
            for action in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            )
        }
        assert granted >= actions, function


def test_the_api_writes_only_the_lock_partition(deployed: Callable[..., Deployed]) -> None:
    (write,) = [
        s for s in _statements(deployed(), "ApiFunctionRole") if "dynamodb:PutItem" in s["Action"]
    ]
    assert write["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["LOCK"]}}


@pytest.mark.parametrize(
    ("alarm", "metric", "threshold"),
    [
        ("SyncRequestsAgeAlarm", "ApproximateAgeOfOldestMessage", 1800),
        ("SyncRequestsDepthAlarm", "ApproximateNumberOfMessagesVisible", 10),
    ],
)
def test_the_queue_has_its_alarms(
    deployed: Callable[..., Deployed], alarm: str, metric: str, threshold: int
) -> None:
    properties = deployed().properties(alarm)
    assert properties["MetricName"] == metric
    assert properties["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["SyncRequestsQueue", "QueueName"]}}
    ]
    assert int(properties["Threshold"]) == threshold
    assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]
