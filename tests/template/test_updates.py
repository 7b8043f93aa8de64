"""The stack survives its own updates: versions, replacements, rules, keys, log groups and names."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any, Final

import pytest

from buildtools import version_hash
from localstage.cfn import load_template as load_raw_template
from tests.template.cfnview import (
    PSEUDO_PARAMETERS,
    REPO_ROOT,
    Template,
    load_template,
    references,
    rule_failures,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.template.cfnview import Deployed

pytestmark = [pytest.mark.template]

SECRET: Final = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vanta-AbCdEf"
FIS_LAYER: Final = "arn:aws:lambda:us-east-1:123456789012:layer:aws-fis-extension-arm64:9"
LADDER: Final = [1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 200, 300, 500, 1000]
STRATEGIES: Final = ["warmer", "provisioned", "snapstart", "none"]
# Every optional resource exists in one of these views.
VIEWS: Final = [
    {"WarmingStrategy": "warmer", "BudgetEmail": "finance@example.com", "AlarmEmail": "a@b.co"},
    {"WarmingStrategy": "provisioned", "CustomerManagedKey": "true"},
    {"WarmingStrategy": "snapstart", "FisLambdaExtensionLayerArn": FIS_LAYER},
]


# ------------------------------------------------------------------ 1. the update matrix
def _version_id(root: Path, overrides: dict[str, str]) -> str:
    """Logical id of the API function's version after `make deploy` of `root` with `overrides`."""
    values = {"VantaSecretArn": SECRET, **overrides}
    template_path = root / "template.yaml"
    sha = version_hash.version_hash(load_raw_template(template_path), "ApiFunction", values, root)
    translated = translate(load_template(template_path), {**values, "ApiVersionHash": sha})
    (version,) = [
        logical_id
        for logical_id, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Version"
    ]
    return str(version)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the API function's version is built from: the template, its code, its layer."""
    root = tmp_path_factory.mktemp("sources")
    shutil.copy(REPO_ROOT / "template.yaml", root / "template.yaml")
    for folder in ("functions/api", "layers/shared"):
        shutil.copytree(
            REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return root


@pytest.fixture(scope="module")
def baseline(sources: Path) -> str:
    return _version_id(sources, {})


# (file, text replaced, replacement); an empty text to replace appends.
EDITS_NEEDING_A_VERSION: Final = {
    "api code": ("functions/api/api_fn/handler.py", "", "# changed\n"),
    "shared layer code": ("layers/shared/vulnstats/__init__.py", "", "# changed\n"),
    "layer requirements": ("layers/shared/requirements.txt", "", "# pinned again\n"),
    "api memory": ("template.yaml", "      MemorySize: 1024\n", "      MemorySize: 2048\n"),
    "api timeout": ("template.yaml", "      Timeout: 10\n", "      Timeout: 12\n"),
}
EDITS_NEEDING_NONE: Final = {
    "sync memory": ("template.yaml", "      MemorySize: 1536\n", "      MemorySize: 2048\n"),
    "an alarm threshold": ("template.yaml", "      Threshold: 1500\n", "      Threshold: 1400\n"),
    "bytecode cache": ("functions/api/api_fn/__pycache__/handler.cpython-313.pyc", "", "x"),
}
SETTINGS_NEEDING_A_VERSION: Final = {
    "AppVersion": "0.2.0",
    "LogLevel": "DEBUG",
    "LambdaInsightsEnabled": "false",
    "Architecture": "x86_64",
    "TracingEnabled": "false",
    "ApiCacheEnabled": "true",
    "FisLambdaExtensionLayerArn": FIS_LAYER,
    "EnvironmentName": "prod",
}
SETTINGS_NEEDING_NONE: Final = {
    "AlarmEmail": "ops@example.com",
    "BudgetEmail": "finance@example.com",
    "MonthlyBudgetUsd": "50",
    "SyncSchedule": "rate(2 hours)",
    "WarmerConcurrency": "7",
    "ProvisionedConcurrencyOffHours": "2",
    "ReserveConcurrency": "false",
    "CustomerManagedKey": "true",
    "ManageApiGatewayAccount": "false",
    "CostCenter": "platform",
    "ProjectName": "vulns",
}


def _edited(sources: Path, tmp_path: Path, edit: tuple[str, str, str]) -> Path:
    root = tmp_path / "edited"
    shutil.copytree(sources, root)
    path = root / edit[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if edit[1]:
        assert text.count(edit[1]) == 1, edit
        path.write_text(text.replace(edit[1], edit[2]), encoding="utf-8")
    else:
        path.write_text(text + edit[2], encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("edit", "needs_version"),
    [(edit, True) for edit in EDITS_NEEDING_A_VERSION.values()]
    + [(edit, False) for edit in EDITS_NEEDING_NONE.values()],
    ids=[*EDITS_NEEDING_A_VERSION, *EDITS_NEEDING_NONE],
)
def test_an_edit_publishes_a_version_exactly_when_the_api_function_holds_it(
    sources: Path, baseline: str, tmp_path: Path, edit: tuple[str, str, str], needs_version: bool
) -> None:
    # given the sources with one edit
    root = _edited(sources, tmp_path, edit)
    # when make deploy translates them
    version = _version_id(root, {})
    # then the version is new exactly when the function's code, layers or definition changed
    assert (version != baseline) is needs_version


@pytest.mark.parametrize(
    ("name", "value", "needs_version"),
    [(name, value, True) for name, value in SETTINGS_NEEDING_A_VERSION.items()]
    + [(name, value, False) for name, value in SETTINGS_NEEDING_NONE.items()],
    ids=[*SETTINGS_NEEDING_A_VERSION, *SETTINGS_NEEDING_NONE],
)
def test_a_setting_publishes_a_version_exactly_when_the_api_function_holds_it(
    sources: Path, baseline: str, name: str, value: str, needs_version: bool
) -> None:
    assert (_version_id(sources, {name: value}) != baseline) is needs_version


def test_every_warming_strategy_switch_publishes_a_version(sources: Path) -> None:
    # given the version each strategy deploys
    versions = {
        strategy: _version_id(sources, {"WarmingStrategy": strategy}) for strategy in STRATEGIES
    }
    # then any switch from one to another moves the live alias to a new version
    for old, new in itertools.permutations(STRATEGIES, 2):
        assert versions[old] != versions[new], (old, new)


def test_without_the_hash_sam_keeps_the_version_across_a_strategy_switch(
    sam_template: Template,
) -> None:
    # given SAM's own version naming (the hash left empty)
    def version(strategy: str) -> str:
        values = {"VantaSecretArn": SECRET, "WarmingStrategy": strategy}
        translated = translate(sam_template, values)
        return str(
            next(lid for lid, r in translated["Resources"].items() if "::Version" in r["Type"])
        )

    # then warmer -> snapstart would publish nothing: why the template names versions by the hash
    assert version("warmer") == version("snapstart")


def test_make_deploy_passes_samconfigs_overrides_and_the_hash_as_sam_parses_them(
    tools_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given what make deploy hands sam deploy for dev
    make = subprocess.run(
        ["make", "-n", "deploy", "ENV=dev"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '--config-env dev --parameter-overrides "$overrides"' in make.stdout
    assert "-m buildtools.version_hash --config-env dev --parameter-overrides" in make.stdout
    assert version_hash.main(["--config-env", "dev", "--parameter-overrides"]) == 0
    printed = capsys.readouterr().out.strip()
    # when SAM CLI's own option type parses it
    parsed = subprocess.run(
        [
            str(tools_dir / "sam" / "bin" / "python"),
            "-c",
            "import json, sys; from samcli.cli.types import CfnParameterOverridesType as T; "
            "print(json.dumps(T().convert((sys.argv[1],), None, None)))",
            printed,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # then it is samconfig's overrides, unchanged, plus the API function's hash
    settings = version_hash.read_deploy_settings(REPO_ROOT / "samconfig.toml", "dev")
    overrides = json.loads(parsed.stdout)
    sha = overrides.pop("ApiVersionHash")
    assert overrides == settings.overrides
    assert len(sha) == 64
    assert int(sha, 16) >= 0


def test_version_hash_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a samconfig whose stack name is one character too long, and an unknown environment
    samconfig = tmp_path / "samconfig.toml"
    long_name = "s" * (version_hash.MAX_STACK_NAME_LENGTH + 1)
    samconfig.write_text(f'version = 0.1\n[dev.deploy.parameters]\nstack_name = "{long_name}"\n')
    for env in ("dev", "qa"):
        # when the hash is asked for
        code = version_hash.main(["--config-env", env, "--samconfig", str(samconfig)])
        # then it exits 2 with one line naming the problem
        err = capsys.readouterr().err
        assert code == 2
        assert err.count("\n") == 1
        assert ("stack_name" in err) if env == "dev" else ("'qa'" in err)


# ------------------------------------------------------------------ 2. named resources
def _schemas(tools_dir: Path) -> dict[str, Any]:
    """CloudFormation resource schemas cfn-lint ships (us-east-1), by type."""
    (providers,) = (tools_dir / "cfnlint").glob(
        "lib/python*/site-packages/cfnlint/data/schemas/providers/us-east-1.json"
    )
    index: dict[str, Any] = json.loads(providers.read_text(encoding="utf-8"))
    resources = providers.parent.parent / "resources"
    return {
        cfn_type: (
            json.loads((resources / f"{entry}.json").read_text(encoding="utf-8"))
            if isinstance(entry, str)
            else entry
        )
        for cfn_type, entry in index.items()
    }


def _at(properties: dict[str, Any], pointer: str) -> Any:
    node: Any = properties
    for part in pointer.removeprefix("/properties/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _parameters_used(node: Any, template: Template) -> set[str]:
    return set(version_hash.used_names(node, template).refs) & set(template["Parameters"])


def test_no_named_resource_has_a_create_only_property_a_parameter_changes(
    tools_dir: Path, sam_template: Template, translated: Template
) -> None:
    # given each resource's create-only properties (CloudFormation's own schemas)
    schemas = _schemas(tools_dir)
    template = {**translated, "Parameters": sam_template["Parameters"]}
    offenders = []
    for logical_id, resource in translated["Resources"].items():
        # a new version under the same layer name is how a layer is updated
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            continue
        create_only = schemas[resource["Type"]].get("createOnlyProperties", [])
        properties = resource.get("Properties", {})
        set_here = {pointer: _at(properties, pointer) for pointer in create_only}
        # its own name: a literal or Fn::Sub, not a reference to another resource
        names = [
            pointer
            for pointer, value in set_here.items()
            if pointer.endswith("Name") and (isinstance(value, str) or "Fn::Sub" in str(value))
        ]
        if not names:
            continue
        # when a parameter update changes another create-only property, the resource is replaced
        for pointer, value in set_here.items():
            if pointer not in names and value is not None and _parameters_used(value, template):
                offenders.append((logical_id, pointer, sorted(_parameters_used(value, template))))
    # then no replacement can collide with the name it keeps
    assert offenders == []


def test_the_budget_is_named_by_cloudformation(deployed: Callable[..., Deployed]) -> None:
    view = deployed(BudgetEmail="finance@example.com")
    assert "BudgetName" not in view.properties("MonthlyBudget")["Budget"]


# ------------------------------------------------------------------ 3. log groups before functions
@pytest.mark.parametrize("overrides", VIEWS, ids=["warmer", "provisioned", "snapstart"])
def test_every_function_logs_to_a_group_the_stack_creates_first(
    deployed: Callable[..., Deployed], overrides: dict[str, str]
) -> None:
    view = deployed(**overrides)
    functions = view.of_type("AWS::Lambda::Function")
    assert functions
    for logical_id, function in functions.items():
        group_ref = function["Properties"]["LoggingConfig"]["LogGroup"]
        group = view.resources[group_ref["Ref"]]
        # the group Lambda would otherwise create, named without referring to the function...
        expected = f"/aws/lambda/{function['Properties']['FunctionName']}"
        assert group["Properties"]["LogGroupName"] == expected
        assert logical_id not in references(group)
        # ... which the function refers to: CloudFormation creates the group first
        assert group["Type"] == "AWS::Logs::LogGroup"


# ------------------------------------------------------------------ 4. API Gateway's account role
@pytest.mark.parametrize("manage", ["true", "false"])
def test_only_the_managing_stack_sets_api_gateways_account_role(
    deployed: Callable[..., Deployed], manage: str
) -> None:
    view = deployed(ManageApiGatewayAccount=manage)
    managed = manage == "true"
    assert bool(view.of_type("AWS::ApiGateway::Account")) is managed
    assert ("ApiGatewayCloudWatchRole" in view.resources) is managed
    # the API waits for the setting when this stack makes it, and never names an absent resource
    assert view.resources["VulnApi"]["DependsOn"] in (
        "ApiGatewayAccountReady",
        ["ApiGatewayAccountReady"],
    )
    handle = view.resources["ApiGatewayAccountReady"]
    assert ("ApiGatewayAccount" in references(handle)) is managed


# ------------------------------------------------------------------ 5, 8. rules
def _values(sam_template: Template, **overrides: object) -> dict[str, str]:
    values = {
        name: str(spec.get("Default", "")) for name, spec in sam_template["Parameters"].items()
    }
    values.update(PSEUDO_PARAMETERS)
    values.update({"VantaSecretArn": SECRET, "ApiVersionHash": "a" * 64})
    values.update({name: str(value) for name, value in overrides.items()})
    return values


def test_rule_evaluator_follows_cloudformations_rule_functions() -> None:
    rules = {
        "Rules": {
            "Gate": {
                "RuleCondition": {"Fn::Equals": [{"Ref": "Mode"}, "on"]},
                "Assertions": [
                    {
                        "Assert": {
                            "Fn::Or": [
                                {"Fn::Contains": [["a", "b"], {"Ref": "Pick"}]},
                                {"Fn::Not": [{"Fn::EachMemberIn": [["c"], ["c", "d"]]}]},
                            ]
                        },
                        "AssertDescription": "pick a or b",
                    },
                    {
                        "Assert": {"Fn::And": [{"Fn::EachMemberEquals": [["x", "x"], "x"]}]},
                        "AssertDescription": "never fails",
                    },
                ],
            }
        }
    }
    assert rule_failures(rules, {"Mode": "on", "Pick": "a"}) == []
    assert rule_failures(rules, {"Mode": "on", "Pick": "z"}) == ["Gate: pick a or b"]
    assert rule_failures(rules, {"Mode": "off", "Pick": "z"}) == []
    with pytest.raises(ValueError, match="unsupported rule function"):
        rule_failures({"Rules": {"R": {"Assertions": [{"Assert": {"Fn::ValueOf": []}}]}}}, {})
    with pytest.raises(ValueError, match="no such parameter"):
        rule_failures(
            {"Rules": {"R": {"Assertions": [{"Assert": {"Fn::Equals": [{"Ref": "Nope"}, "x"]}}]}}},
            {},
        )


def test_samconfigs_environments_and_the_defaults_pass_every_rule(sam_template: Template) -> None:
    for env in ("default", "dev", "prod"):
        settings = version_hash.read_deploy_settings(REPO_ROOT / "samconfig.toml", env)
        assert rule_failures(sam_template, _values(sam_template, **settings.overrides)) == [], env


def test_provisioned_levels_are_refused_exactly_when_above_the_maximum(
    sam_template: Template,
) -> None:
    # given every combination of the three levels on their ladder
    for maximum, business, off in itertools.product(LADDER, repeat=3):
        values = _values(
            sam_template,
            WarmingStrategy="provisioned",
            ProvisionedConcurrencyMax=maximum,
            ProvisionedConcurrencyBusinessHours=business,
            ProvisionedConcurrencyOffHours=off,
        )
        # when the rules judge it, then it is refused exactly when Auto Scaling would refuse it
        refused = bool(rule_failures(sam_template, values))
        assert refused is (business > maximum or off > maximum), (maximum, business, off)
    # and only the provisioned strategy is judged on them
    values = _values(
        sam_template, ProvisionedConcurrencyMax=1, ProvisionedConcurrencyBusinessHours=5
    )
    assert rule_failures(sam_template, values) == []


def test_the_ladder_is_what_each_provisioned_level_allows(sam_template: Template) -> None:
    for name in ("Max", "BusinessHours", "OffHours"):
        allowed = sam_template["Parameters"][f"ProvisionedConcurrency{name}"]["AllowedValues"]
        assert [int(value) for value in allowed] == LADDER, name


def test_a_deploy_without_the_version_hash_is_refused(sam_template: Template) -> None:
    failures = rule_failures(sam_template, _values(sam_template, ApiVersionHash=""))
    assert len(failures) == 1
    assert "make deploy" in failures[0]


def test_lambda_insights_is_refused_where_the_mapping_has_no_layer(
    sam_template: Template,
) -> None:
    mapped = set(sam_template["Mappings"]["LambdaInsightsLayer"])
    # a region the mapping lacks: refused with Insights on, accepted with it off
    values = _values(sam_template, **{"AWS::Region": "xx-nowhere-1"})
    (failure,) = rule_failures(sam_template, values)
    assert "LambdaInsightsEnabled=false" in failure
    values["LambdaInsightsEnabled"] = "false"
    assert rule_failures(sam_template, values) == []
    # every mapped region passes
    for region in mapped:
        assert rule_failures(sam_template, _values(sam_template, **{"AWS::Region": region})) == []


# ------------------------------------------------------------------ 6. reserved concurrency
@pytest.mark.parametrize(("reserve", "expected"), [("true", {5, 1}), ("false", set())])
def test_reserved_concurrency_follows_its_parameter(
    deployed: Callable[..., Deployed], reserve: str, expected: set[int]
) -> None:
    view = deployed(WarmingStrategy="warmer", ReserveConcurrency=reserve)
    reserved = {
        int(function["Properties"]["ReservedConcurrentExecutions"])
        for function in view.of_type("AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in function["Properties"]
    }
    assert reserved == expected


# ------------------------------------------------------------------ 7. keys and their data
STORES: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "AWS::S3::Bucket": lambda p: p["BucketEncryption"]["ServerSideEncryptionConfiguration"],
    "AWS::DynamoDB::Table": lambda p: p["SSESpecification"],
    "AWS::Logs::LogGroup": lambda p: p.get("KmsKeyId"),
    "AWS::SQS::Queue": lambda p: p.get("KmsMasterKeyId"),
    "AWS::SNS::Topic": lambda p: p.get("KmsMasterKeyId"),
}


def test_with_the_option_the_stacks_key_encrypts_every_store(
    deployed: Callable[..., Deployed],
) -> None:
    # given every store of the stack, the chaos experiment's bucket included
    view = deployed(CustomerManagedKey="true", FisLambdaExtensionLayerArn=FIS_LAYER)
    stores = {
        logical_id: encryption(resource["Properties"])
        for cfn_type, encryption in STORES.items()
        for logical_id, resource in view.of_type(cfn_type).items()
    }
    # then each names the stack's key
    assert "FisConfigBucket" in stores
    unencrypted = sorted(
        lid for lid, setting in stores.items() if "OperationsKey" not in references(setting)
    )
    assert unencrypted == []


@pytest.mark.parametrize("overrides", VIEWS, ids=["warmer", "provisioned", "snapstart"])
def test_a_key_is_kept_as_long_as_the_data_it_encrypts(
    deployed: Callable[..., Deployed], overrides: dict[str, str]
) -> None:
    view = deployed(**{**overrides, "CustomerManagedKey": "true"})
    keys = view.of_type("AWS::KMS::Key")
    for logical_id, resource in view.resources.items():
        for key in references(resource.get("Properties", {})) & set(keys):
            for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
                if resource.get(policy) == "Retain":
                    assert keys[key].get(policy) == "Retain", (logical_id, key, policy)


def test_the_fault_configuration_writer_may_use_the_key(deployed: Callable[..., Deployed]) -> None:
    view = deployed(CustomerManagedKey="true", FisLambdaExtensionLayerArn=FIS_LAYER)
    statements = [
        statement
        for policy in view.properties("FisExperimentRole")["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    on_key = [s for s in statements if s["Resource"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}]
    assert on_key
    assert "kms:GenerateDataKey" in on_key[0]["Action"]


# ------------------------------------------------------------------ 9. stack name length
# Service limits of the names the template builds from the stack name (Lambda and EventBridge
# quotas: 64 characters for function and rule names; CloudWatch 255 for alarm and dashboard names).
NAME_LIMITS: Final = {
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::Lambda::LayerVersion", "LayerName"): 140,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::ApplicationAutoScaling::ScalingPolicy", "PolicyName"): 256,
}


def test_the_stack_name_limit_version_hash_enforces_is_the_templates(
    deployed: Callable[..., Deployed],
) -> None:
    # given every name built from the stack name, in views where every named resource exists
    stack = PSEUDO_PARAMETERS["AWS::StackName"]
    room = []
    for overrides in VIEWS:
        view = deployed(**overrides)
        for (cfn_type, prop), limit in NAME_LIMITS.items():
            for resource in view.of_type(cfn_type).values():
                name = resource["Properties"].get(prop)
                if isinstance(name, str) and stack in name:
                    room.append(limit - (len(name) - len(stack)))
    # then the tightest one is what make deploy enforces, and the README states it
    assert min(room) == version_hash.MAX_STACK_NAME_LENGTH
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"at most {version_hash.MAX_STACK_NAME_LENGTH} characters" in readme
