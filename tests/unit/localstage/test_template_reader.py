"""Template reader: parameters, conditions, Globals, intrinsics and events read for a local run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from localstage.cfn import TemplateError, local_physical_name
from localstage.intrinsics import open_template
from localstage.spec import ApiRoute, ScheduleSpec, StackSpec
from localstage.template import load_stack

FIXTURES = Path(__file__).parent / "fixtures"
STACK = FIXTURES / "stack.yaml"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vanta-AbCdEf"
ACCOUNT = "123456789012"


def _load(**overrides: str) -> StackSpec:
    return load_stack(STACK, overrides={"VantaSecretArn": SECRET_ARN, **overrides})


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    template = tmp_path / "template.yaml"
    template.write_text(textwrap.dedent(body), encoding="utf-8")
    return template


MINIMAL_FUNCTION = """
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.13
"""


# --------------------------------------------------------------------------- parameters


def test_parameters_take_their_defaults_when_not_overridden() -> None:
    stack = _load()

    assert stack.parameters["StageName"] == "dev"
    assert stack.parameters["CacheTtlSeconds"] == "60"
    assert stack.functions["SyncFunction"].environment["STAGE_NAME"] == "dev"


def test_overrides_replace_defaults_everywhere_they_are_referenced() -> None:
    stack = _load(StageName="prod", VantaApiBaseUrl="http://127.0.0.1:8080")

    sync = stack.functions["SyncFunction"]
    assert sync.environment["STAGE_NAME"] == "prod"
    assert sync.environment["VANTA_API_BASE_URL"] == "http://127.0.0.1:8080"
    assert sync.environment["POWERTOOLS_LOG_LEVEL"] == "INFO"  # FindInMap keyed by the stage
    assert sync.environment["VANTA_SECRET_ARN"] == SECRET_ARN


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        pytest.param(
            None,
            r"Parameters\.VantaSecretArn: no value and no Default; pass it in overrides",
            id="a required parameter without a value",
        ),
        pytest.param(
            {"VantaSecretArn": SECRET_ARN, "StageName": "qa"},
            r"Parameters\.StageName: 'qa' is not one of",
            id="a value outside AllowedValues",
        ),
        pytest.param(
            {"VantaSecretArn": SECRET_ARN, "Nope": "1"},
            "unknown parameters Nope",
            id="an override of no parameter",
        ),
    ],
)
def test_a_bad_parameter_is_refused_by_name(
    overrides: dict[str, str] | None, complaint: str
) -> None:
    with pytest.raises(TemplateError, match=complaint):
        load_stack(STACK, overrides=overrides)


# --------------------------------------------------------------------------- conditions


def test_false_condition_removes_the_resource() -> None:
    stack = _load()

    assert "ProdOnlyBucket" not in stack.resources
    assert "ProdBucket" not in stack.outputs
    assert "WarmerFunction" in stack.functions


def test_true_condition_keeps_the_resource() -> None:
    stack = _load(StageName="prod")

    assert "ProdOnlyBucket" in stack.resources
    assert stack.outputs["ProdBucket"] == "vulnstats-local-prodonlybucket"


def test_condition_on_a_function_removes_it_with_its_schedules() -> None:
    stack = _load(WarmingStrategy="none")

    assert "WarmerFunction" not in stack.functions
    assert all(
        s.function != "WarmerFunction" for f in stack.functions.values() for s in f.schedules
    )


def test_and_or_not_conditions_combine() -> None:
    dev = _load().functions["WarmerFunction"].environment
    prod = _load(StageName="prod").functions["WarmerFunction"].environment

    assert dev["WARM_CONCURRENCY"] == "2"  # UseWarmer and not IsProd
    assert prod["WARM_CONCURRENCY"] == "4"
    assert dev["ANY_WARMING"] == "yes"


def test_ref_to_a_resource_removed_by_its_condition_names_both(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        """
        Parameters:
          Stage: {Type: String, Default: dev}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
        Resources:
          Gone:
            Type: AWS::S3::Bucket
            Condition: IsProd
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              Environment:
                Variables:
                  BUCKET: !Ref Gone
        """,
    )

    with pytest.raises(TemplateError, match=r"Resources\.Fn\..*BUCKET: Ref to Gone, which its"):
        load_stack(template)


# --------------------------------------------------------------------------- Globals


def test_globals_fill_in_what_the_function_does_not_set() -> None:
    api = _load().functions["ApiFunction"]

    assert api.runtime == "python3.13"
    assert api.architecture == "arm64"
    assert api.memory_mb == 512
    assert api.timeout_s == 10
    assert api.reserved_concurrency is None


def test_function_properties_win_over_globals() -> None:
    sync = _load().functions["SyncFunction"]

    assert sync.memory_mb == 1024
    assert sync.timeout_s == 900
    assert sync.reserved_concurrency == 5


def test_environment_variables_merge_key_by_key_with_the_function_winning() -> None:
    sync = _load().functions["SyncFunction"]

    assert sync.environment["APP_VERSION"] == "1.2.3"  # from Globals only
    assert sync.environment["POWERTOOLS_SERVICE_NAME"] == "sync"  # function overrides Globals
    assert sync.environment["MAX_POOL_CONNECTIONS"] == "10"  # numbers become strings
    assert all(isinstance(value, str) for value in sync.environment.values())
    assert not any(name.startswith("AWS_") for name in sync.environment)


def test_layers_concatenate_globals_first_and_foreign_layers_are_recorded_not_run() -> None:
    warmer = _load().functions["WarmerFunction"]

    assert warmer.layer_dirs == ((FIXTURES / "code" / "layer").resolve(),)
    assert warmer.skipped_layers == (
        "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension-Arm64:20",
        "arn:aws:lambda:us-east-1:123456789012:layer:SomeoneElses:3",
    )


def test_code_and_layer_folders_are_absolute_and_relative_to_the_template() -> None:
    sync = _load().functions["SyncFunction"]

    assert sync.code_dir == (FIXTURES / "code" / "sync").resolve()
    assert sync.handler == "sync_fn.handler.handler"
    assert sync.function_name == "SyncFunction"


# --------------------------------------------------------------------------- intrinsics


def test_ref_resolves_to_local_physical_ids() -> None:
    env = _load().functions["SyncFunction"].environment

    assert env["TABLE_NAME"] == "vulnstats-local-statetable"
    assert env["ARCHIVE_BUCKET"] == "vulnstats-local-archivebucket"
    assert env["TOPIC_ARN"] == f"arn:aws:sns:us-east-1:{ACCOUNT}:vulnstats-local-alarmtopic"
    assert env["DLQ_URL"] == f"http://127.0.0.1:5000/{ACCOUNT}/vulnstats-local-syncdeadletterqueue"


def test_queue_urls_follow_the_emulator_endpoint() -> None:
    stack = load_stack(
        STACK, overrides={"VantaSecretArn": SECRET_ARN}, endpoint_url="http://127.0.0.1:4566"
    )

    assert (
        stack.functions["SyncFunction"].environment["DLQ_URL"].startswith("http://127.0.0.1:4566/")
    )


def test_ref_to_a_function_is_its_name_and_get_att_arn_its_arn() -> None:
    env = _load().functions["ApiFunction"].environment

    assert env["SYNC_FUNCTION_NAME"] == "SyncFunction"
    assert env["SYNC_FUNCTION_ARN"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:SyncFunction"


def test_get_att_arn_builds_local_arns_in_both_forms() -> None:
    env = _load().functions["SyncFunction"].environment

    assert (
        env["TABLE_ARN"] == f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/vulnstats-local-statetable"
    )
    assert env["BUCKET_ARN"] == "arn:aws:s3:::vulnstats-local-archivebucket"
    assert env["DLQ_ARN"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:vulnstats-local-syncdeadletterqueue"


def test_sub_in_string_and_list_form_with_pseudo_parameters_and_escapes() -> None:
    env = _load().functions["SyncFunction"].environment

    assert env["RAW_PREFIX"] == "s3://vulnstats-local-archivebucket/raw/${literal}"
    assert env["REGION_LABEL"] == f"us-east-1-dev-{ACCOUNT}"
    assert env["PARTITION"] == "aws:vulnstats-local"


def test_select_join_split_and_comma_delimited_lists() -> None:
    env = _load().functions["SyncFunction"].environment

    assert env["SECOND_TARGET"] == "beta"
    assert env["JOINED"] == "a|dev|x"


def test_if_with_no_value_removes_the_variable() -> None:
    assert "OPTIONAL" not in _load().functions["SyncFunction"].environment
    assert _load(StageName="prod").functions["SyncFunction"].environment["OPTIONAL"] == "prod-only"


def test_alias_refs_resolve_to_alias_qualified_arns() -> None:
    targets = _load().functions["WarmerFunction"].environment["WARM_TARGETS"].split(",")

    assert targets == [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:ApiFunction:live"] * 2


def test_stack_name_region_and_account_shape_every_local_name() -> None:
    stack = load_stack(
        STACK,
        overrides={"VantaSecretArn": SECRET_ARN},
        stack_name="Other_Stack",
        region="eu-west-1",
        account_id="000000000000",
    )

    env = stack.functions["SyncFunction"].environment
    assert (
        env["TABLE_ARN"] == "arn:aws:dynamodb:eu-west-1:000000000000:table/other-stack-statetable"
    )
    assert stack.resources["ArchiveBucket"].physical_name == "other-stack-archivebucket"


def test_local_names_are_valid_s3_bucket_names_even_when_long() -> None:
    name = local_physical_name("My_Stack", "A" * 80)

    assert len(name) <= 63
    assert name == name.lower()
    assert name[0].isalnum()
    assert name[-1].isalnum()
    assert name == local_physical_name("My_Stack", "A" * 80)


def _function_with(properties: str) -> str:
    """Resources: with one function, `properties` (indented YAML) added to its Properties."""
    return (
        "Resources:\n"
        + MINIMAL_FUNCTION
        + textwrap.indent(textwrap.dedent(properties).strip("\n") + "\n", " " * 6)
    )


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        pytest.param(
            _function_with("Environment: {Variables: {SHARED: !ImportValue other-stack-output}}"),
            r"^Resources\.Fn\.Properties\.Environment\.Variables\.SHARED: "
            r"unsupported intrinsic Fn::ImportValue$",
            id="an intrinsic the local stage does not model",
        ),
        pytest.param(
            _function_with("Environment: {Variables: {X: !GetAtt Queue.Nonsense}}")
            + "  Queue:\n    Type: AWS::SQS::Queue\n",
            r"Variables\.X: unsupported attribute Queue\.Nonsense",
            id="an attribute the resource has not",
        ),
        pytest.param(
            _function_with("Environment: {Variables: {X: !Ref Missing}}"),
            "Ref to unknown parameter or resource 'Missing'",
            id="a Ref to nothing",
        ),
        pytest.param(
            _function_with("Handler: !Foo [a, b]").replace("      Handler: app.handler\n", ""),
            r"^Resources\.Fn\.Properties\.Handler: unsupported ",
            id="an unknown short-form tag",
        ),
        pytest.param(
            MINIMAL_FUNCTION.join(["Resources:\n", ""]).replace("src/", "s3://bucket/code.zip"),
            r"Resources\.Fn\.Properties\.CodeUri: .* is in S3",
            id="code in S3",
        ),
        pytest.param(
            _function_with(
                """
                Events:
                  Tick:
                    Type: Schedule
                    Properties: {Schedule: rate(1 minute), Input: "{not json"}
                """
            ),
            r"Resources\.Fn\.Properties\.Events\.Tick.*Input",
            id="a schedule Input that is not JSON",
        ),
        pytest.param(
            """
            Resources:
              Table:
                Type: AWS::DynamoDB::Table
                Properties:
                  KeySchema: !ImportValue shared-keys
                  AttributeDefinitions: []
            """,
            r"Resources\.Table\.Properties\.KeySchema: unsupported",
            id="a property the emulator needs that does not resolve",
        ),
        pytest.param(
            """
            Resources:
              Legacy:
                Type: AWS::Lambda::Function
                Properties: {Handler: app.handler, Runtime: python3.13, Code: {ZipFile: "x"}}
            """,
            r"^Resources\.Legacy: AWS::Lambda::Function is not",
            id="a plain Lambda function",
        ),
    ],
)
def test_what_a_local_run_cannot_read_is_refused_with_the_resource_and_property_named(
    tmp_path: Path, template: str, complaint: str
) -> None:
    with pytest.raises(TemplateError, match=complaint):
        load_stack(_write(tmp_path, template))


def test_unmodelled_resource_types_are_ignored(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        MINIMAL_FUNCTION.join(
            [
                "Resources:\n",
                """
  Dashboard:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub '{"region": "${AWS::Region}", "x": "${Unknown.Thing}"}'
""",
            ]
        ),
    )

    stack = load_stack(template)

    assert list(stack.functions) == ["Fn"]
    assert stack.resources == {}


def test_unresolvable_output_is_left_out_with_a_warning(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        "Resources:\n"
        + MINIMAL_FUNCTION
        + """
Outputs:
  Shared:
    Value: !ImportValue elsewhere
  Name:
    Value: !Ref Fn
""",
    )

    stack = load_stack(template)

    assert stack.outputs == {"Name": "Fn"}
    assert any("Outputs.Shared.Value" in warning for warning in stack.warnings)


# --------------------------------------------------------------------------- events


def test_api_events_become_routes_with_api_key_from_the_api_default_or_the_event() -> None:
    routes = _load().functions["ApiFunction"].routes

    assert routes == (
        ApiRoute("ApiFunction", "GET", "/health", api_key_required=False),
        ApiRoute("ApiFunction", "GET", "/stats", api_key_required=True),
        ApiRoute("ApiFunction", "GET", "/vulnerabilities/{id}", api_key_required=True),
        ApiRoute("ApiFunction", "POST", "/sync", api_key_required=True),
    )


def test_schedule_events_carry_parsed_input_and_state() -> None:
    schedules = _load().functions["SyncFunction"].schedules

    assert schedules == (
        ScheduleSpec(
            "SyncFunction", "Hourly", "rate(1 hour)", {"source": "schedule", "full": False}
        ),
        ScheduleSpec("SyncFunction", "Nightly", "cron(0 2 * * ? *)", None, enabled=False),
    )


def test_dead_letter_queue_and_retries_come_from_the_function() -> None:
    stack = _load()

    assert stack.functions["SyncFunction"].dead_letter_queue == "SyncDeadLetterQueue"
    assert stack.functions["SyncFunction"].max_event_retries == 0
    assert stack.functions["ApiFunction"].dead_letter_queue is None
    assert stack.functions["ApiFunction"].max_event_retries == 2


def test_iam_authorizer_on_the_api_marks_routes_iam(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        """
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties:
              StageName: v1
              Auth:
                DefaultAuthorizer: AWS_IAM
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              Events:
                Any:
                  Type: Api
                  Properties: {RestApiId: !Ref Api, Path: "/{proxy+}", Method: any}
        """,
    )

    (route,) = load_stack(template).functions["Fn"].routes

    assert route == ApiRoute("Fn", "ANY", "/{proxy+}", api_key_required=False, iam_auth=True)


# --------------------------------------------------------------------------- emulated resources


def test_emulated_resources_carry_resolved_properties() -> None:
    stack = _load(StageName="prod")

    table = stack.resources["StateTable"]
    assert table.type == "AWS::DynamoDB::Table"
    assert table.physical_name == "vulnstats-local-statetable"
    assert table.properties["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table.properties["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert [r.logical_id for r in stack.resources_of_type("AWS::SQS::Queue")] == [
        "SyncDeadLetterQueue"
    ]
    assert stack.resources["VulnApi"].properties["Auth"]["ApiKeyRequired"] is True
    assert "AlarmEmailSubscription" not in stack.resources


def test_json_templates_are_read_too(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    template = tmp_path / "template.json"
    template.write_text(
        json.dumps(
            {
                "Resources": {
                    "Fn": {
                        "Type": "AWS::Serverless::Function",
                        "Properties": {
                            "CodeUri": "src/",
                            "Handler": "app.handler",
                            "Runtime": "python3.13",
                            "Environment": {"Variables": {"R": {"Fn::Sub": "${AWS::Region}"}}},
                        },
                    }
                }
            }
        ),
        encoding="utf-8",
    )

    assert load_stack(template, region="eu-central-1").functions["Fn"].environment == {
        "R": "eu-central-1"
    }


# --------------------------------------------------------------------------- robustness


def test_properties_a_local_run_does_not_use_are_not_resolved(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              Policies:
                - Statement:
                    - Effect: Allow
                      Action: s3:GetObject
                      Resource: !ImportValue shared-bucket-arn
          Bucket:
            Type: AWS::S3::Bucket
            Properties:
              VersioningConfiguration: {Status: Enabled}
              LoggingConfiguration:
                DestinationBucketName: !ImportValue shared-log-bucket
        """,
    )

    stack = load_stack(template)

    assert stack.resources["Bucket"].properties == {
        "VersioningConfiguration": {"Status": "Enabled"}
    }
    assert any("Bucket.Properties.LoggingConfiguration" in w for w in stack.warnings)


def test_refs_to_resources_sam_generates_resolve_locally(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        """
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties: {StageName: v1}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              AutoPublishAlias: live
              Environment:
                Variables:
                  ROLE_ARN: !GetAtt FnRole.Arn
                  ALIAS: !Ref FnAliaslive
                  STAGE: !Ref Api.Stage
                  KEY: !Ref ApiApiKey
        """,
    )

    env = load_stack(template, stack_name="s").functions["Fn"].environment

    assert env == {
        "ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/s-fnrole",
        "ALIAS": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:Fn:live",
        "STAGE": "v1",
        "KEY": "s-apiapikey",
    }


def test_globals_intrinsic_value_is_replaced_not_merged(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        """
        Parameters:
          Prod: {Type: String, Default: "false"}
        Conditions:
          IsProd: !Equals [!Ref Prod, "true"]
        Globals:
          Function:
            Environment: !If
              - IsProd
              - {Variables: {FROM: globals-prod}}
              - {Variables: {FROM: globals-dev}}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.13
              Environment:
                Variables: {OWN: "1"}
        """,
    )

    assert load_stack(template).functions["Fn"].environment == {"OWN": "1"}


OPENAPI_SECURITY = """
Parameters:
  AuthType: {Type: String, Default: API_KEY, AllowedValues: [API_KEY, IAM]}
Conditions:
  UseIam: !Equals [!Ref AuthType, IAM]
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      DefinitionBody:
        swagger: "2.0"
        securityDefinitions:
          api_key: {type: apiKey, name: x-api-key, in: header}
          sigv4:
            type: apiKey
            name: Authorization
            in: header
            x-amazon-apigateway-authtype: awsSigv4
        paths:
          /stats:
            get:
              security: !If [UseIam, [sigv4: []], [api_key: []]]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.13
      Events:
        Health:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health, Method: get}
        Stats:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /stats, Method: get}
"""


@pytest.mark.parametrize(
    ("auth_type", "key_required", "iam"), [("API_KEY", True, False), ("IAM", False, True)]
)
def test_route_security_comes_from_the_api_definition_body(
    tmp_path: Path, auth_type: str, key_required: bool, iam: bool
) -> None:
    template = _write(tmp_path, OPENAPI_SECURITY)

    health, stats = load_stack(template, overrides={"AuthType": auth_type}).functions["Fn"].routes

    assert health == ApiRoute("Fn", "GET", "/health", api_key_required=False)
    assert stats == ApiRoute("Fn", "GET", "/stats", api_key_required=key_required, iam_auth=iam)


REAL_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


@pytest.mark.skipif(not REAL_TEMPLATE.exists(), reason="template.yaml does not exist yet")
def test_real_template_reads_with_the_probes_open_and_other_routes_keyed() -> None:
    stack = load_stack(REAL_TEMPLATE, overrides={"VantaSecretArn": SECRET_ARN})

    routes = [route for spec in stack.functions.values() for route in spec.routes]
    assert {"SyncFunction", "ApiFunction"} <= set(stack.functions)
    assert routes
    probes = {"/health", "/health/ready"}  # liveness, and readiness for Route 53's checks
    assert all(route.api_key_required == (route.path not in probes) for route in routes)
    assert stack.functions["SyncFunction"].environment["VANTA_SECRET_ARN"] == SECRET_ARN
    assert all(spec.code_dir.is_dir() for spec in stack.functions.values())


def test_dates_stay_strings_as_cloudformation_reads_them(tmp_path: Path) -> None:
    template = _write(
        tmp_path,
        "Parameters:\n  Since: {Type: String, Default: 2024-01-01}\nResources:\n"
        + MINIMAL_FUNCTION,
    )

    assert load_stack(template).parameters["Since"] == "2024-01-01"


def test_a_partial_read_leaves_bad_parameters_unset_until_one_is_referenced() -> None:
    # given the warming cost model's kind of read: a few values, every resource kept
    resolver = open_template(
        STACK, overrides={"WarmingStrategy": "always"}, partial=True, keep_conditional=True
    )

    # then the parameters without a valid value are unset, with the reason a Ref reports
    assert set(resolver.unset) == {"VantaSecretArn", "WarmingStrategy"}
    assert resolver.resolve({"Ref": "StageName"}, "X") == "dev"
    with pytest.raises(
        TemplateError, match=r"^X: Ref to WarmingStrategy: .*'always' is not one of"
    ):
        resolver.resolve({"Ref": "WarmingStrategy"}, "X")
