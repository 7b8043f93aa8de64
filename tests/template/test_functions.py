"""Functions: handlers, sizing, Insights, log groups, environment, least privilege, tags."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import Template, deploy_view

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

API_GATEWAY_TIMEOUT_S: Final = 29
INSIGHTS_POLICY: Final = "arn:aws:iam::aws:policy/CloudWatchLambdaInsightsExecutionRolePolicy"
# From CONTRIBUTING.md: handler, service name and the variables each function needs.
FUNCTIONS: Final[dict[str, dict[str, Any]]] = {
    "SyncFunction": {
        "handler": "sync_fn.handler.handler",
        "service": "sync",
        "env": {
            "TABLE_NAME",
            "ARCHIVE_BUCKET",
            "VANTA_SECRET_ARN",
            "VANTA_API_BASE_URL",
            "SYNC_QUEUE_URL",
        },
    },
    "ApiFunction": {
        "handler": "api_fn.handler.handler",
        "service": "api",
        "env": {"TABLE_NAME", "SYNC_QUEUE_URL", "CACHE_TTL_SECONDS"},
    },
    "WarmerFunction": {
        "handler": "warmer_fn.handler.handler",
        "service": "warmer",
        "env": {"WARM_TARGETS", "WARM_CONCURRENCY"},
    },
}
COMMON_ENV: Final = {
    "APP_VERSION",
    "STAGE_NAME",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_LOGGER_SAMPLE_RATE",
    "LOG_BUFFER_BYTES",
    "TRACING_ENABLED",
    "MAX_POOL_CONNECTIONS",
}
SECRET_LIKE: Final = [
    re.compile(r"\bv(ci|cs|at)_[A-Za-z0-9]"),  # Vanta client id, client secret, token
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key id
    re.compile(r"(?i)(password|passwd|secret_?key|client_?secret|bearer )"),
    re.compile(r"^[A-Za-z0-9/+=]{40}$"),  # AWS secret access key shape
]
TAGGABLE: Final = {
    "AWS::Lambda::Function",
    "AWS::IAM::Role",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::UsagePlan",
    "AWS::CloudWatch::Alarm",
}
COST_TAGS: Final = {"Project", "Environment", "CostCenter"}


def secret_like_environment(view: Deployed) -> list[str]:
    """Environment values that are literals looking like credentials (references are fine)."""
    found: list[str] = []
    for logical_id, function in view.of_type("AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            if isinstance(value, str) and any(p.search(value) for p in SECRET_LIKE):
                found.append(f"{logical_id}.{name}")
            if re.search(r"(?i)secret|password|token", name) and not name.endswith("_ARN"):
                found.append(f"{logical_id}.{name} (name)")
    return found


def _statements(view: Deployed) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, role in view.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                found.append((logical_id, statement))
    return found


def _resource_text(resource: Any) -> str:
    """A policy resource as text: a Fn::Sub pattern, a plain ARN, or the intrinsic's repr."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        argument = resource["Fn::Sub"]
        return str(argument if isinstance(argument, str) else argument[0])
    return resource if isinstance(resource, str) else repr(resource)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_functions_use_the_handlers_and_runtime_of_the_contract(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(WarmingStrategy="warmer", Architecture="x86_64")

    for logical_id, contract in FUNCTIONS.items():
        properties = view.properties(logical_id)
        assert properties["Handler"] == contract["handler"], logical_id
        assert properties["Runtime"] == "python3.13", logical_id
        assert properties["Architectures"] == ["x86_64"], logical_id
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == contract["service"], logical_id
        assert set(variables) >= COMMON_ENV | contract["env"], logical_id


def test_architecture_defaults_to_arm64(deployed: Callable[..., Deployed]) -> None:
    assert deployed().properties("SyncFunction")["Architectures"] == ["arm64"]


def test_sync_function_is_sized_and_bounded_as_designed(deployed: Callable[..., Deployed]) -> None:
    view = deployed()
    sync = view.properties("SyncFunction")

    assert int(sync["MemorySize"]) == 1536
    assert int(sync["Timeout"]) == 900
    assert int(sync["ReservedConcurrentExecutions"]) == 5
    # nothing invokes it asynchronously any more: no async DLQ, no event invoke config
    assert "DeadLetterConfig" not in sync
    assert "SyncFunctionEventInvokeConfig" not in view.resources


def test_api_function_answers_within_api_gateways_limit(deployed: Callable[..., Deployed]) -> None:
    api = deployed().properties("ApiFunction")

    assert int(api["Timeout"]) < API_GATEWAY_TIMEOUT_S


@pytest.mark.parametrize(("architecture", "column"), [("arm64", "arm64"), ("x86_64", "x86")])
def test_every_function_runs_lambda_insights_for_its_architecture(
    deployed: Callable[..., Deployed], translated: Template, architecture: str, column: str
) -> None:
    view = deployed(Architecture=architecture, WarmingStrategy="warmer")
    layer = translated["Mappings"]["LambdaInsightsLayer"]["us-east-1"][column]

    functions = view.of_type("AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for logical_id, function in functions.items():
        assert layer in function["Properties"]["Layers"], logical_id
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert INSIGHTS_POLICY in view.properties(role)["ManagedPolicyArns"], logical_id


def test_insights_can_be_turned_off(deployed: Callable[..., Deployed]) -> None:
    view = deployed(LambdaInsightsEnabled="false")

    for logical_id, function in view.of_type("AWS::Lambda::Function").items():
        layers = [layer for layer in function["Properties"]["Layers"] if isinstance(layer, str)]
        assert not any("LambdaInsightsExtension" in layer for layer in layers), logical_id
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert INSIGHTS_POLICY not in view.properties(role)["ManagedPolicyArns"], logical_id


def test_insights_layer_table_matches_region_and_architecture(translated: Template) -> None:
    table = translated["Mappings"]["LambdaInsightsLayer"]

    for region, columns in table.items():
        assert set(columns) == {"arm64", "x86"}, region
        for column, arn in columns.items():
            match = re.fullmatch(
                r"arn:aws[a-z-]*:lambda:([a-z0-9-]+):\d{12}:layer:(LambdaInsightsExtension(-Arm64)?):\d+",
                arn,
            )
            assert match is not None, arn
            assert match.group(1) == region, arn
            assert (match.group(3) is not None) == (column == "arm64"), arn


def test_every_function_writes_to_a_declared_log_group_with_retention(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(WarmingStrategy="warmer", LogRetentionDays=14)
    groups = {
        group["Properties"]["LogGroupName"]: group["Properties"]
        for group in view.of_type("AWS::Logs::LogGroup").values()
    }

    for logical_id in FUNCTIONS:
        name = f"/aws/lambda/{view.properties(logical_id)['FunctionName']}"
        assert name in groups, f"no log group {name}"
        assert int(groups[name]["RetentionInDays"]) == 14
        # the function name is fixed, so the group is named before the function exists
        assert name.startswith("/aws/lambda/vulnstats-test-")
    assert all(int(group["RetentionInDays"]) == 14 for group in groups.values())


def test_no_environment_value_looks_like_a_secret(deployed: Callable[..., Deployed]) -> None:
    view = deployed(WarmingStrategy="warmer")

    assert secret_like_environment(view) == []
    secret_arn = view.properties("SyncFunction")["Environment"]["Variables"]["VANTA_SECRET_ARN"]
    assert secret_arn == {"Ref": "VantaSecretArn"}


@pytest.mark.parametrize(
    "value",
    [
        "vcs_9f8e7d6c5b4a",
        "AKIAABCDEFGHIJKLMNOP",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "p password",
    ],
)
def test_a_literal_secret_in_the_environment_is_caught(translated: Template, value: str) -> None:
    broken = copy.deepcopy(translated)
    broken["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]["EXTRA"] = value

    assert secret_like_environment(deploy_view(broken)) == ["ApiFunction.EXTRA"]


def test_iam_grants_no_star_action_and_no_star_resource(deployed: Callable[..., Deployed]) -> None:
    for strategy in ("warmer", "provisioned"):
        for role, statement in _statements(deployed(WarmingStrategy=strategy)):
            if statement.get("Effect") != "Allow":
                continue
            for action in _as_list(statement["Action"]):
                assert action != "*", role
                assert not action.endswith(":*"), (role, action)
            for resource in _as_list(statement["Resource"]):
                text = _resource_text(resource)
                assert text != "*", (role, statement)
                # the only wildcards allowed: objects of a bucket, indexes of a table
                assert "*" not in text or re.search(r"[^*]/(index/)?\*$", text), (role, text)


def test_key_policy_grants_no_star_action(deployed: Callable[..., Deployed]) -> None:
    policy = deployed().properties("OperationsKey")["KeyPolicy"]

    for statement in policy["Statement"]:
        for action in _as_list(statement["Action"]):
            assert action not in ("*", "kms:*"), statement.get("Sid")


def test_invoke_permissions_are_scoped_to_their_targets(deployed: Callable[..., Deployed]) -> None:
    view = deployed(WarmingStrategy="warmer")
    invokes = {
        role: statement["Resource"]
        for role, statement in _statements(view)
        if "lambda:InvokeFunction" in _as_list(statement["Action"])
    }

    # sync requests go through the queue: only the warmer invokes a function directly
    assert invokes == {"WarmerFunctionRole": {"Ref": "ApiFunctionAliaslive"}}


def test_sync_reads_only_its_secret_and_writes_only_its_archive(
    deployed: Callable[..., Deployed],
) -> None:
    statements = {
        statement.get("Sid"): statement
        for role, statement in _statements(deployed())
        if role == "SyncFunctionRole"
    }

    assert statements["ReadVantaCredentials"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadVantaCredentials"]["Resource"] == {"Ref": "VantaSecretArn"}
    assert sorted(statements["ArchiveRawPages"]["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert statements["ArchiveRawPages"]["Resource"] == "${ArchiveBucket.Arn}/*"


def test_every_taggable_resource_carries_the_cost_allocation_tags(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(WarmingStrategy="warmer", CostCenter="sec-ops")
    checked = 0

    for logical_id, resource in view.resources.items():
        if resource["Type"] not in TAGGABLE:
            continue
        tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"].get("Tags", [])}
        assert set(tags) >= COST_TAGS, logical_id
        assert tags["CostCenter"] == "sec-ops", logical_id
        assert tags["Environment"] == "dev", logical_id
        checked += 1
    assert checked >= 25
