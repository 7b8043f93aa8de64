"""The customer managed key option: queue and topic always, table, bucket and logs on request."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

KEY_ARN: Final = {"Fn::GetAtt": ["OperationsKey", "Arn"]}
LOGS_PRINCIPAL: Final = "logs.us-east-1.amazonaws.com"
ACCOUNT_LOGS: Final = "arn:aws:logs:us-east-1:123456789012:log-group:"


def _statements(view: Deployed, role: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in view.properties(role).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def _kms_actions_on_the_key(view: Deployed, role: str) -> set[str]:
    actions: set[str] = set()
    for statement in _statements(view, role):
        granted = statement["Action"]
        granted = [granted] if isinstance(granted, str) else granted
        if statement["Effect"] == "Allow" and statement.get("Resource") == KEY_ARN:
            actions |= {action for action in granted if action.startswith("kms:")}
    return actions


def _logs_statement(view: Deployed) -> dict[str, Any] | None:
    statements = view.properties("OperationsKey")["KeyPolicy"]["Statement"]
    found = [s for s in statements if s.get("Principal", {}).get("Service") == LOGS_PRINCIPAL]
    assert len(found) <= 1
    return found[0] if found else None


def _log_group_names(view: Deployed) -> dict[str, str]:
    """Each log group's name, with `${Function}` replaced by that function's name."""
    names = {}
    for logical_id, group in view.of_type("AWS::Logs::LogGroup").items():
        name = group["Properties"]["LogGroupName"]
        names[logical_id] = re.sub(
            r"\$\{(\w+)\}", lambda m: view.properties(m.group(1))["FunctionName"], name
        )
    return names


@pytest.mark.parametrize("setting", ["true", "false"])
def test_queue_and_topic_use_the_stacks_key_whatever_the_setting(
    deployed: Callable[..., Deployed], setting: str
) -> None:
    view = deployed(CustomerManagedKey=setting)
    for queue in view.of_type("AWS::SQS::Queue"):
        assert view.properties(queue)["KmsMasterKeyId"] == {"Ref": "OperationsKey"}, queue
    for topic in view.of_type("AWS::SNS::Topic"):
        assert view.properties(topic)["KmsMasterKeyId"] == {"Ref": "OperationsKey"}, topic
    assert view.properties("OperationsKey")["EnableKeyRotation"] is True
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= _kms_actions_on_the_key(
        view, "SyncFunctionRole"
    )


def test_by_default_table_bucket_and_logs_use_aws_managed_encryption(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed()

    assert view.values["CustomerManagedKey"] == "false"
    assert view.properties("StateTable")["SSESpecification"] == {"SSEEnabled": True}
    (rule,) = view.properties("ArchiveBucket")["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    for group in view.of_type("AWS::Logs::LogGroup"):
        assert "KmsKeyId" not in view.properties(group), group
    assert _logs_statement(view) is None
    # the API sends sync requests to the queue, which the stack's key encrypts either way
    assert _kms_actions_on_the_key(view, "ApiFunctionRole") == {
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }


def test_the_option_encrypts_table_bucket_and_every_log_group_with_the_key(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(CustomerManagedKey="true")

    assert view.properties("StateTable")["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": KEY_ARN,
    }
    (rule,) = view.properties("ArchiveBucket")["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN},
        "BucketKeyEnabled": True,
    }
    groups = view.of_type("AWS::Logs::LogGroup")
    assert {"SyncLogGroup", "ApiLogGroup", "WarmerLogGroup", "ApiAccessLogGroup"} <= set(groups)
    for group in groups:
        assert view.properties(group)["KmsKeyId"] == KEY_ARN, group


def test_the_key_lets_cloudwatch_logs_use_it_for_this_stacks_log_groups_only(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(CustomerManagedKey="true")
    statement = _logs_statement(view)

    assert statement is not None
    assert statement["Effect"] == "Allow"
    assert "kms:GenerateDataKey*" in statement["Action"]
    assert "kms:Decrypt*" in statement["Action"]
    patterns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert all(pattern.startswith(ACCOUNT_LOGS) for pattern in patterns)
    # every log group of the stack matches a pattern; a group of another stack matches none
    for logical_id, name in _log_group_names(view).items():
        assert any(fnmatchcase(ACCOUNT_LOGS + name, p) for p in patterns), (logical_id, name)
    assert not any(fnmatchcase(ACCOUNT_LOGS + "/aws/lambda/other-stack-sync", p) for p in patterns)


def test_the_functions_may_use_the_key_for_what_they_touch(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(CustomerManagedKey="true")

    # the sync writes and reads archive pages and table items; the API reads the table and
    # both send to the SyncRequests queue
    assert _kms_actions_on_the_key(view, "SyncFunctionRole") == {
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    assert _kms_actions_on_the_key(view, "ApiFunctionRole") == {
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
