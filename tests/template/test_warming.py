"""Each warming strategy creates the resources it promises and no others; the evaluator is sound."""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import (
    Template,
    deploy_view,
    evaluate_conditions,
    parameter_values,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

STRATEGIES: Final = ("warmer", "provisioned", "snapstart", "none")
# Resources each strategy adds to what `none` deploys (logical ids after translation).
EXPECTED_EXTRA: Final[dict[str, frozenset[str]]] = {
    "warmer": frozenset(
        {
            "WarmerFunction",
            "WarmerFunctionRole",
            "WarmerFunctionEventInvokeConfig",
            "WarmerFunctionOffPeak",
            "WarmerFunctionOffPeakPermission",
            "WarmerFunctionPeak",
            "WarmerFunctionPeakPermission",
            "WarmerLogGroup",
            "WarmingQuery",  # pings versus cold starts: a question only the warmer raises
        }
    ),
    "provisioned": frozenset(
        {"ApiProvisionedConcurrencyTarget", "ApiProvisionedConcurrencyScaling"}
    ),
    "snapstart": frozenset(),
    "none": frozenset(),
}


def strategy_problems(template: Template) -> list[str]:
    """Problems of the warming strategies of a translated template (empty when all is well)."""
    problems: list[str] = []
    baseline = set(deploy_view(template, {"WarmingStrategy": "none"}).resources)
    for strategy in STRATEGIES:
        view = deploy_view(template, {"WarmingStrategy": strategy})
        extra = set(view.resources) - baseline
        if extra != EXPECTED_EXTRA[strategy]:
            problems.append(
                f"{strategy}: adds {sorted(extra)}, expected {sorted(EXPECTED_EXTRA[strategy])}"
            )
        if baseline - set(view.resources):
            problems.append(f"{strategy}: removes {sorted(baseline - set(view.resources))}")
        snapstart = view.properties("ApiFunction").get("SnapStart")
        if (snapstart == {"ApplyOn": "PublishedVersions"}) != (strategy == "snapstart"):
            problems.append(f"{strategy}: ApiFunction SnapStart is {snapstart!r}")
        provisioned = view.properties("ApiFunctionAliaslive").get("ProvisionedConcurrencyConfig")
        if (provisioned is not None) != (strategy == "provisioned"):
            problems.append(f"{strategy}: live alias provisioned concurrency is {provisioned!r}")
    return problems


# ------------------------------------------------------------------ the condition evaluator itself
def _conditions(expressions: dict[str, Any], **values: str) -> dict[str, bool]:
    template: Template = {
        "Parameters": {name: {"Type": "String"} for name in values},
        "Conditions": expressions,
        "Mappings": {"Sizes": {"dev": {"Big": "no"}, "prod": {"Big": "yes"}}},
    }
    return evaluate_conditions(template, parameter_values(template, values))


def test_evaluator_handles_equals_not_and_or_and_condition_references() -> None:
    expressions = {
        "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
        "IsNotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        "ProdAndArm": {
            "Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": [{"Ref": "Arch"}, "arm64"]}]
        },
        "ProdOrArm": {
            "Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["arm64", {"Ref": "Arch"}]}]
        },
        "BigByMap": {"Fn::Equals": [{"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Big"]}, "yes"]},
        "IfInside": {"Fn::Equals": [{"Fn::If": ["IsProd", {"Ref": "Arch"}, "x86_64"]}, "arm64"]},
        "InRegion": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
    }

    assert _conditions(expressions, Env="prod", Arch="arm64") == {
        "IsProd": True,
        "IsNotProd": False,
        "ProdAndArm": True,
        "ProdOrArm": True,
        "BigByMap": True,
        "IfInside": True,
        "InRegion": True,
    }
    assert _conditions(expressions, Env="dev", Arch="x86_64") == {
        "IsProd": False,
        "IsNotProd": True,
        "ProdAndArm": False,
        "ProdOrArm": False,
        "BigByMap": False,
        "IfInside": False,
        "InRegion": True,
    }


@pytest.mark.parametrize(
    "expressions",
    [
        {"Probe": {"Fn::Equals": [{"Ref": "Unknown"}, "x"]}},
        {"Probe": {"Condition": "Missing"}},
        {"Probe": {"Fn::Contains": [["a"], "a"]}},
        {"Probe": {"Fn::Equals": [{"Fn::Select": [0, ["a"]]}, "a"]}},
        {"Probe": {"Condition": "Loop"}, "Loop": {"Fn::Not": [{"Condition": "Probe"}]}},
    ],
)
def test_evaluator_refuses_what_it_cannot_evaluate(expressions: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        _conditions(expressions, Env="dev")


def test_evaluator_accepts_a_well_formed_probe() -> None:
    # the refusals above come from the probes, not from the harness
    assert _conditions({"Probe": {"Fn::Equals": [{"Ref": "Env"}, "dev"]}}, Env="dev") == {
        "Probe": True
    }


def test_evaluator_agrees_with_the_template_for_the_default_values(translated: Template) -> None:
    values = parameter_values(translated, {})
    conditions = evaluate_conditions(translated, values)

    assert conditions["UseWarmer"] is True
    assert conditions["UseProvisioned"] is False
    assert conditions["UseApiKeyAuth"] is True
    assert conditions["HasAlarmEmail"] is False
    assert conditions["InsightsOn"] is True


# ------------------------------------------------------------------ the strategies
def test_each_strategy_creates_what_it_promises_and_nothing_else(translated: Template) -> None:
    assert strategy_problems(translated) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda t: t["Conditions"].update(
                UseWarmer={"Fn::Equals": [{"Ref": "WarmingStrategy"}, "provisioned"]}
            ),
            id="warmer-condition-points-at-provisioned",
        ),
        pytest.param(
            lambda t: t["Resources"]["ApiProvisionedConcurrencyTarget"].pop("Condition"),
            id="scalable-target-unconditional",
        ),
        pytest.param(
            lambda t: t["Resources"]["ApiProvisionedConcurrencyScaling"].pop("Condition"),
            id="scaling-policy-unconditional",
        ),
        pytest.param(
            lambda t: t["Resources"]["ApiFunction"]["Properties"].update(
                SnapStart={"ApplyOn": "PublishedVersions"}
            ),
            id="snapstart-always-on",
        ),
        pytest.param(
            lambda t: t["Conditions"].update(
                UseSnapStart={"Fn::Not": [{"Condition": "UseWarmer"}]}
            ),
            id="snapstart-condition-too-wide",
        ),
    ],
)
def test_a_broken_strategy_wiring_is_caught(
    translated: Template, mutate: Callable[[Template], object]
) -> None:
    # given a copy of the template with one strategy wired wrongly
    broken = copy.deepcopy(translated)
    mutate(broken)

    # then the strategy check reports it
    assert strategy_problems(broken) != []


def test_warmer_pings_the_live_alias_on_two_schedules(deployed: Callable[..., Deployed]) -> None:
    view = deployed(WarmingStrategy="warmer", WarmerConcurrency=4, WarmerPeakConcurrency=9)
    warmer = view.properties("WarmerFunction")

    variables = warmer["Environment"]["Variables"]
    # the alias API Gateway invokes (its own environments), never the unqualified $LATEST
    assert variables["WARM_TARGETS"] == {"Ref": "ApiFunctionAliaslive"}
    assert variables["WARM_CONCURRENCY"] == "4"
    rules = {
        lid: rule["Properties"]
        for lid, rule in view.of_type("AWS::Events::Rule").items()
        if rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["WarmerFunction", "Arn"]}
    }
    assert {lid: rule["ScheduleExpression"] for lid, rule in rules.items()} == {
        "WarmerFunctionOffPeak": "rate(5 minutes)",
        "WarmerFunctionPeak": "cron(0/2 8-17 ? * MON-FRI *)",
    }
    # each schedule asks for its own N through its Input
    inputs = {lid: rule["Targets"][0]["Input"] for lid, rule in rules.items()}
    assert {lid: json.loads(_sub(text, view)) for lid, text in inputs.items()} == {
        "WarmerFunctionOffPeak": {"schedule": "offpeak", "concurrency": 4},
        "WarmerFunctionPeak": {"schedule": "peak", "concurrency": 9},
    }


def _sub(value: Any, view: Deployed) -> str:
    """A schedule Input: a plain string, or a Fn::Sub over parameters."""
    if isinstance(value, str):
        return value
    text = value["Fn::Sub"]
    assert isinstance(text, str)
    return re.sub(r"\$\{(\w+)\}", lambda m: str(view.values[m.group(1)]), text)


def test_provisioned_concurrency_follows_business_hours(deployed: Callable[..., Deployed]) -> None:
    view = deployed(
        WarmingStrategy="provisioned",
        ProvisionedConcurrencyBusinessHours=8,
        ProvisionedConcurrencyOffHours=2,
        ProvisionedConcurrencyMax=30,
    )
    target = view.resources["ApiProvisionedConcurrencyTarget"]
    properties = target["Properties"]

    assert target["DependsOn"] in ("ApiFunctionAliaslive", ["ApiFunctionAliaslive"])
    assert properties["ServiceNamespace"] == "lambda"
    assert properties["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    assert properties["ResourceId"] == "function:${ApiFunction}:live"
    # the schedules move the floor; target tracking may add up to the ceiling
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == ("2", "30")
    actions = {a["Schedule"]: a["ScalableTargetAction"] for a in properties["ScheduledActions"]}
    assert actions == {
        "cron(0 8 ? * MON-FRI *)": {"MinCapacity": "8", "MaxCapacity": "30"},
        "cron(0 18 ? * MON-FRI *)": {"MinCapacity": "2", "MaxCapacity": "30"},
    }
    alias = view.properties("ApiFunctionAliaslive")
    assert alias["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": "2"}


def test_provisioned_concurrency_tracks_its_utilisation(deployed: Callable[..., Deployed]) -> None:
    view = deployed(WarmingStrategy="provisioned", ProvisionedConcurrencyTargetUtilization=0.6)
    policy = view.properties("ApiProvisionedConcurrencyScaling")

    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == {"Ref": "ApiProvisionedConcurrencyTarget"}
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert float(tracking["TargetValue"]) == 0.6
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
    }
