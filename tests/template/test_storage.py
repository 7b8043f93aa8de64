"""Queue, topic, bucket, table and budget are configured for safety and cost as designed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

FOURTEEN_DAYS_S: Final = 14 * 24 * 3600


def test_dead_letter_queue_keeps_messages_14_days_encrypted(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()
    queue = view.properties("DeadLetterQueue")

    assert int(queue["MessageRetentionPeriod"]) == FOURTEEN_DAYS_S == 1209600
    assert queue["KmsMasterKeyId"] == {"Ref": "OperationsKey"}
    assert view.properties("OperationsKey")["EnableKeyRotation"] is True


def test_only_this_stacks_rules_and_topic_may_feed_the_queue(
    deployed: Callable[..., Deployed],
) -> None:
    statements = deployed().properties("DeadLetterQueuePolicy")["PolicyDocument"]["Statement"]
    by_principal = {statement["Principal"]["Service"]: statement for statement in statements}

    events = by_principal["events.amazonaws.com"]
    assert events["Action"] == "sqs:SendMessage"
    assert events["Condition"]["ArnLike"]["aws:SourceArn"] == (
        "arn:aws:events:us-east-1:123456789012:rule/vulnstats-test-*"
    )
    sns = by_principal["sns.amazonaws.com"]
    assert sns["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "AlarmTopic"}


def test_alarm_topic_is_encrypted_and_mails_only_when_asked(
    deployed: Callable[..., Deployed],
) -> None:
    assert deployed().properties("AlarmTopic")["KmsMasterKeyId"] == {"Ref": "OperationsKey"}
    assert "AlarmEmailSubscription" not in deployed().resources

    subscription = deployed(AlarmEmail="ops@example.com").properties("AlarmEmailSubscription")
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "ops@example.com"
    assert subscription["TopicArn"] == {"Ref": "AlarmTopic"}


def test_key_lets_cloudwatch_and_eventbridge_use_it(deployed: Callable[..., Deployed]) -> None:
    statements = deployed().properties("OperationsKey")["KeyPolicy"]["Statement"]
    granted = {
        statement["Principal"]["Service"]: statement["Action"]
        for statement in statements
        if "Service" in statement["Principal"]
    }

    assert set(granted) == {"cloudwatch.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"}
    for actions in granted.values():
        assert sorted(actions) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_bucket_policy_denies_requests_without_tls(deployed: Callable[..., Deployed]) -> None:
    statements = deployed().properties("ArchiveBucketPolicy")["PolicyDocument"]["Statement"]

    denies = [
        statement
        for statement in statements
        if statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(denies) == 1
    (deny,) = denies
    assert deny["Principal"] == "*"
    assert deny["Resource"] == [{"Fn::GetAtt": ["ArchiveBucket", "Arn"]}, "${ArchiveBucket.Arn}/*"]


def test_archive_bucket_is_private_versioned_encrypted_and_tiered(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()
    bucket = view.properties("ArchiveBucket")

    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    transitions = {t["StorageClass"]: int(t["TransitionInDays"]) for t in lifecycle["Transitions"]}
    assert transitions == {"STANDARD_IA": 90, "GLACIER": 365}
    assert int(lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"]) > 0
    assert view.resources["ArchiveBucket"]["DeletionPolicy"] == "Retain"


def test_state_table_has_the_agreed_keys(deployed: Callable[..., Deployed]) -> None:
    view = deployed()
    table = view.properties("StateTable")

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert index["KeySchema"] == [
        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"pk": "S", "sk": "S", "gsi1pk": "S", "gsi1sk": "S"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert view.resources["StateTable"]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize(("environment", "protected"), [("prod", True), ("dev", False)])
def test_prod_table_is_protected_from_deletion(
    deployed: Callable[..., Deployed], environment: str, protected: bool
) -> None:
    table = deployed(EnvironmentName=environment).properties("StateTable")

    assert table["DeletionProtectionEnabled"] is protected


def test_budget_alerts_on_forecast_and_actual_when_an_address_is_given(
    deployed: Callable[..., Deployed],
) -> None:
    assert "MonthlyBudget" not in deployed().resources

    budget = deployed(BudgetEmail="finance@example.com", MonthlyBudgetUsd=250).properties(
        "MonthlyBudget"
    )
    assert budget["Budget"]["BudgetType"] == "COST"
    assert budget["Budget"]["TimeUnit"] == "MONTHLY"
    assert budget["Budget"]["BudgetLimit"] == {"Amount": "250", "Unit": "USD"}
    alerts = {
        (n["Notification"]["NotificationType"], int(n["Notification"]["Threshold"]))
        for n in budget["NotificationsWithSubscribers"]
    }
    assert alerts == {("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 80), ("FORECASTED", 100)}
    for notification in budget["NotificationsWithSubscribers"]:
        assert notification["Notification"]["ThresholdType"] == "PERCENTAGE"
        assert notification["Subscribers"] == [
            {"SubscriptionType": "EMAIL", "Address": "finance@example.com"}
        ]
