"""The optional AWS FIS experiment: nothing by default; with the layer, exactly what it needs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed, Template

pytestmark = [pytest.mark.template]

LAYER: Final = "arn:aws:lambda:us-east-1:123456789012:layer:aws-fis-extension-arm64:9"
CHAOS_RESOURCES: Final = frozenset(
    {"FisConfigBucket", "FisConfigBucketPolicy", "FisExperimentRole", "FisLambdaExperiment"}
)
TARGETED: Final = ("SyncFunction", "ApiFunction")
FIS_VARIABLES: Final = {
    "AWS_LAMBDA_EXEC_WRAPPER",
    "AWS_FIS_CONFIGURATION_LOCATION",
    "AWS_FIS_POLL_MAX_WAIT_MILLISECONDS",
}


def _statements(view: Deployed, role: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in view.properties(role).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def _reads_fault_configuration(view: Deployed, role: str) -> bool:
    return any(
        "FisConfigBucket" in str(statement.get("Resource")) for statement in _statements(view, role)
    )


def test_by_default_no_chaos_resource_exists_and_no_function_carries_the_extension(
    deployed: Callable[..., Deployed],
) -> None:
    # given the template with its defaults
    view = deployed()
    # then none of the experiment's resources or outputs exist
    assert CHAOS_RESOURCES.isdisjoint(view.resources)
    assert {"FisExperimentTemplateId", "FisConfigBucketName"}.isdisjoint(view.outputs)
    # and no function has the FIS layer, its variables or its bucket permissions
    for function in (*TARGETED, "WarmerFunction"):
        properties = view.properties(function)
        assert not any("fis" in str(layer).lower() for layer in properties["Layers"])
        assert FIS_VARIABLES.isdisjoint(properties["Environment"]["Variables"])
        assert not _reads_fault_configuration(view, f"{function}Role")


def test_with_the_layer_exactly_the_experiment_resources_are_added(
    deployed: Callable[..., Deployed],
) -> None:
    # given the default view and the view with an extension layer
    off, on = deployed(), deployed(FisLambdaExtensionLayerArn=LAYER)
    # then the experiment adds exactly its four resources and removes nothing
    assert set(on.resources) - set(off.resources) == CHAOS_RESOURCES
    assert set(off.resources) <= set(on.resources)
    assert {"FisExperimentTemplateId", "FisConfigBucketName"} <= set(on.outputs)


def test_the_sync_and_api_functions_get_the_layer_wrapper_and_configuration_location(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(FisLambdaExtensionLayerArn=LAYER)
    for function in TARGETED:
        properties = view.properties(function)
        variables = properties["Environment"]["Variables"]
        # the layer is added after the shared one (and Insights), not instead of them
        assert properties["Layers"][-1] == LAYER
        assert len(properties["Layers"]) == len(deployed().properties(function)["Layers"]) + 1
        assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/aws-fis/bootstrap"
        assert variables["AWS_FIS_CONFIGURATION_LOCATION"] == (
            "arn:aws:s3:::${FisConfigBucket}/FisConfigs/"
        )
        # and the function may read (only) the fault configuration prefix
        reads = [s for s in _statements(view, f"{function}Role") if "Fis" in str(s)]
        assert {str(s["Action"]) for s in reads} == {"s3:GetObject", "s3:ListBucket"}
        assert all(s["Effect"] == "Allow" for s in reads)
    # while the warmer, which is not a target, is untouched
    warmer = view.properties("WarmerFunction")
    assert LAYER not in warmer["Layers"]
    assert FIS_VARIABLES.isdisjoint(warmer["Environment"]["Variables"])


def test_the_experiment_injects_errors_and_delay_into_the_two_functions_only(
    deployed: Callable[..., Deployed],
) -> None:
    experiment = deployed(FisLambdaExtensionLayerArn=LAYER).properties("FisLambdaExperiment")
    targets = experiment["Targets"]
    # then every target is a Lambda function of this stack, all selected
    assert {t["ResourceType"] for t in targets.values()} == {"aws:lambda:function"}
    arns = sorted(str(arn) for t in targets.values() for arn in t["ResourceArns"])
    assert arns == sorted(str({"Fn::GetAtt": [f, "Arn"]}) for f in TARGETED)
    assert {t["SelectionMode"] for t in targets.values()} == {"ALL"}
    # and the actions are the Lambda fault actions, each on a declared target, each bounded
    actions = experiment["Actions"]
    assert {a["ActionId"] for a in actions.values()} == {
        "aws:lambda:invocation-error",
        "aws:lambda:invocation-add-delay",
    }
    for name, action in actions.items():
        assert set(action["Targets"]) == {"Functions"}, name
        assert action["Targets"]["Functions"] in targets, name
        assert action["Parameters"]["duration"].startswith("PT"), name
        assert 1 <= int(action["Parameters"]["invocationPercentage"]) <= 100, name
    delayed = [a for a in actions.values() if a["ActionId"].endswith("add-delay")]
    assert all(0 <= int(a["Parameters"]["startupDelayMilliseconds"]) <= 900_000 for a in delayed)
    errors = [a for a in actions.values() if a["ActionId"].endswith("invocation-error")]
    assert {a["Parameters"]["preventExecution"] for a in errors} == {"true"}
    hit = {targets[a["Targets"]["Functions"]]["ResourceArns"][0]["Fn::GetAtt"][0] for a in errors}
    assert hit == set(TARGETED)


def test_stop_conditions_are_alarms_that_exist_whenever_the_experiment_does(
    sam_template: Template, deployed: Callable[..., Deployed]
) -> None:
    # given the experiment with Lambda Insights off (fewer alarms exist then)
    view = deployed(FisLambdaExtensionLayerArn=LAYER, LambdaInsightsEnabled="false")
    conditions = view.properties("FisLambdaExperiment")["StopConditions"]
    # then every stop condition is a CloudWatch alarm of this template that exists
    assert conditions
    assert {c["Source"] for c in conditions} == {"aws:cloudwatch:alarm"}
    alarms = [c["Value"]["Fn::GetAtt"] for c in conditions]
    assert all(attribute == "Arn" for _, attribute in alarms)
    for alarm, _ in alarms:
        assert sam_template["Resources"][alarm]["Type"] == "AWS::CloudWatch::Alarm"
        assert alarm in view.resources


def test_the_experiment_role_is_for_fis_and_scoped_to_the_experiment(
    deployed: Callable[..., Deployed],
) -> None:
    view = deployed(FisLambdaExtensionLayerArn=LAYER)
    role = view.properties("FisExperimentRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "fis.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    allowed = {
        str(s["Action"]): s["Resource"]
        for s in _statements(view, "FisExperimentRole")
        if s["Effect"] == "Allow"
    }
    assert allowed == {
        "['s3:PutObject', 's3:DeleteObject']": "${FisConfigBucket.Arn}/FisConfigs/*",
        "lambda:GetFunction": [{"Fn::GetAtt": [f, "Arn"]} for f in TARGETED],
        "tag:GetResources": "*",  # the Resource Groups Tagging API has no resource-level scope
    }
    assert view.properties("FisLambdaExperiment")["RoleArn"] == {
        "Fn::GetAtt": ["FisExperimentRole", "Arn"]
    }


def test_the_layer_parameter_refuses_anything_but_empty_or_a_layer_version_arn(
    sam_template: Template,
) -> None:
    pattern = re.compile(sam_template["Parameters"]["FisLambdaExtensionLayerArn"]["AllowedPattern"])
    assert pattern.match("")
    assert pattern.match(LAYER)
    assert not pattern.match("arn:aws:lambda:us-east-1:123456789012:function:x")
    assert not pattern.match("/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x")
    assert sam_template["Parameters"]["FisLambdaExtensionLayerArn"]["Default"] == ""
