"""Template layout, parameters and their documentation, samconfig, reference integrity."""

from __future__ import annotations

import copy
import itertools
import re
import shlex
import tomllib
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests.template.cfnview import REPO_ROOT, Template, deploy_view, references

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

SECTION_ORDER: Final = [
    "Parameters",
    "Rules",
    "Conditions",
    "Mappings",
    "Globals",
    "Resources",
    "Outputs",
]
PARAMETERS_DOC: Final = REPO_ROOT / "README.md"
SAMCONFIG: Final = REPO_ROOT / "samconfig.toml"
DEPLOY_KEYS: Final = {
    "stack_name",
    "region",
    "capabilities",
    "resolve_s3",
    "confirm_changeset",
    "parameter_overrides",
    "tags",
}


def _documented() -> dict[str, list[str]]:
    """Rows of the parameters table: name -> [default, allowed values, meaning]."""
    rows: dict[str, list[str]] = {}
    for line in PARAMETERS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([A-Za-z0-9]+)` \|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def _overrides(deploy: dict[str, Any]) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))
    return dict(pairs)


def test_sections_follow_the_house_order(sam_template: Template) -> None:
    sections = [key for key in sam_template if key in SECTION_ORDER]

    assert sections == SECTION_ORDER


def test_every_parameter_is_described_with_a_usable_default(sam_template: Template) -> None:
    for name, spec in sam_template["Parameters"].items():
        assert len(spec.get("Description", "")) >= 20, name
        if "AllowedValues" in spec and "Default" in spec:
            allowed = [str(value) for value in spec["AllowedValues"]]
            assert str(spec["Default"]) in allowed, name
        if "AllowedPattern" in spec and "Default" in spec:
            assert re.fullmatch(spec["AllowedPattern"], str(spec["Default"])), name
    required = [name for name, spec in sam_template["Parameters"].items() if "Default" not in spec]
    assert required == ["VantaSecretArn"]


def test_parameters_doc_lists_every_parameter_with_its_default_and_values(
    sam_template: Template,
) -> None:
    documented = _documented()
    parameters = sam_template["Parameters"]

    assert list(documented) == list(parameters)
    for name, spec in parameters.items():
        default, allowed, meaning = documented[name]
        if "Default" not in spec:
            assert "required" in default, name
        elif str(spec["Default"]) == "":
            assert default == "(empty)", name
        else:
            assert default == f"`{spec['Default']}`", name
        for value in spec.get("AllowedValues", []):
            assert f"`{value}`" in allowed, (name, value)
        assert len(meaning) >= 20, name


def test_samconfig_defines_default_dev_and_prod_deployments(sam_template: Template) -> None:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
    parameters = sam_template["Parameters"]

    assert config["version"] == 0.1
    deploys = {env: config[env]["deploy"]["parameters"] for env in ("default", "dev", "prod", "dr")}
    assert deploys["default"] == deploys["dev"]
    for env, deploy in deploys.items():
        assert set(deploy) >= DEPLOY_KEYS, env
        assert deploy["capabilities"] == "CAPABILITY_IAM", env
        assert deploy["resolve_s3"] is True, env
        assert isinstance(deploy["confirm_changeset"], bool), env
        overrides = _overrides(deploy)
        assert set(overrides) <= set(parameters), env
        for name, value in overrides.items():
            spec = parameters[name]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], (env, name)
        tags = dict(item.split("=", 1) for item in shlex.split(deploy["tags"]))
        assert set(tags) >= {"Project", "Environment", "CostCenter"}, env
    assert _overrides(deploys["dev"])["EnvironmentName"] == "dev"
    assert _overrides(deploys["prod"])["EnvironmentName"] == "prod"
    assert deploys["dev"]["stack_name"] != deploys["prod"]["stack_name"]


def test_samconfig_dr_is_prods_standby_in_another_region() -> None:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
    prod, dr = (config[env]["deploy"]["parameters"] for env in ("prod", "dr"))
    overrides = _overrides(dr)

    assert dr["region"] != prod["region"]
    assert config["dr"]["global"]["parameters"]["region"] == dr["region"]
    assert dr["stack_name"] not in {prod["stack_name"], "vulnstats-dev"}
    assert overrides["EnvironmentName"] == "prod"
    assert overrides["FailoverRole"] == "SECONDARY"
    # the standby syncs less often, so its readiness bound is wider than its interval
    assert overrides["SyncSchedule"] == "rate(3 hours)"
    assert int(overrides["ReadinessMaxDataAgeSeconds"]) > 3 * 3600


def test_samconfig_holds_no_account_id_and_an_obvious_secret_placeholder(
    sam_template: Template,
) -> None:
    text = SAMCONFIG.read_text(encoding="utf-8")
    config = tomllib.loads(text)
    pattern = sam_template["Parameters"]["VantaSecretArn"]["AllowedPattern"]

    assert re.search(r"(?<!\d)\d{12}(?!\d)", text) is None
    for env in ("default", "dev", "prod", "dr"):
        placeholder = _overrides(config[env]["deploy"]["parameters"])["VantaSecretArn"]
        assert "REPLACE" in placeholder
        # the template refuses the placeholder, so a forgotten one stops the deploy early
        assert re.fullmatch(pattern, placeholder) is None


COMBINATIONS: Final = list(
    itertools.product(
        ("warmer", "provisioned", "snapstart", "none"),
        ("API_KEY", "IAM"),
        ("true", "false"),
        ("", "someone@example.com"),
    )
)


@pytest.mark.parametrize(("strategy", "auth", "insights", "email"), COMBINATIONS)
def test_no_resource_or_output_refers_to_an_absent_resource(  # noqa: PLR0917 - parametrized
    deployed: Callable[..., Deployed],
    sam_template: Template,
    strategy: str,
    auth: str,
    insights: str,
    email: str,
) -> None:
    view = deployed(
        WarmingStrategy=strategy,
        ApiAuthType=auth,
        LambdaInsightsEnabled=insights,
        AlarmEmail=email,
        BudgetEmail=email,
    )
    known = set(view.resources) | set(sam_template["Parameters"])

    for logical_id, resource in view.resources.items():
        depends = resource.get("DependsOn", [])
        names = references(resource.get("Properties", {})) | set(
            depends if isinstance(depends, list) else [depends]
        )
        assert names <= known, (logical_id, sorted(names - known))
    for name, output in view.outputs.items():
        assert references(output["Value"]) <= known, name


def test_a_reference_to_a_conditional_resource_is_caught(translated: Template) -> None:
    # given a dashboard that names the warmer function, which only the warmer strategy creates
    broken = copy.deepcopy(translated)
    body = broken["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    body["Fn::Sub"] = body["Fn::Sub"].replace("${AWS::StackName}-warmer", "${WarmerFunction}")
    view = deploy_view(broken, {"WarmingStrategy": "none"})

    # then the integrity check sees the dangling reference
    dashboard_refs = references(view.properties("Dashboard"))
    assert "WarmerFunction" in dashboard_refs
    assert "WarmerFunction" not in view.resources
