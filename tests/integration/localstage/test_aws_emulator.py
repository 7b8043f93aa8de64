"""AWS emulator: a loopback moto server holding the resources template.yaml defines."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from localstage.aws import (
    VANTA_SECRET_PARAMETER,
    AwsEmulatorError,
    MotoPortInUseError,
    MotoServer,
    aws_environment,
    create_stack_resources,
    prepare_local_stack,
    start_moto,
)
from localstage.template import load_stack
from locate import DUMMY_CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.spec import StackSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
REAL_TEMPLATE = REPO / "template.yaml"
FIXTURE_TEMPLATE = REPO / "tests" / "unit" / "localstage" / "fixtures" / "stack.yaml"
REGION = "us-east-1"
VANTA = {"client_id": "local-client", "client_secret": "local-secret"}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with start_moto("127.0.0.1", 0) as server:
        yield server


def _client(service: str, server: MotoServer) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        **DUMMY_CREDENTIALS,
    )


@pytest.fixture(scope="module")
def fixture_stack(moto_server: MotoServer) -> tuple[StackSpec, dict[str, str]]:
    return prepare_local_stack(
        FIXTURE_TEMPLATE,
        moto_server.endpoint_url,
        vanta_credentials=VANTA,
        stack_name="fixture-stack",
        region=REGION,
    )


def test_server_listens_on_loopback_with_an_ephemeral_port(moto_server: MotoServer) -> None:
    assert moto_server.host == "127.0.0.1"
    assert moto_server.port > 0
    assert moto_server.endpoint_url == f"http://127.0.0.1:{moto_server.port}"
    assert moto_server.running()


def test_table_has_keys_index_billing_and_ttl_from_the_template(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    _, created = fixture_stack
    dynamodb = _client("dynamodb", moto_server)

    table = dynamodb.describe_table(TableName=created["StateTable"])["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=created["StateTable"])

    assert created["StateTable"] == "fixture-stack-statetable"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert index["Projection"]["ProjectionType"] == "ALL"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl["TimeToLiveDescription"] == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}


def test_bucket_is_versioned_and_blocks_public_access(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    _, created = fixture_stack
    s3 = _client("s3", moto_server)

    versioning = s3.get_bucket_versioning(Bucket=created["ArchiveBucket"])
    block = s3.get_public_access_block(Bucket=created["ArchiveBucket"])

    assert versioning["Status"] == "Enabled"
    assert all(block["PublicAccessBlockConfiguration"].values())


def test_queue_keeps_the_template_retention_and_its_url_matches_the_reader(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    stack, created = fixture_stack
    sqs = _client("sqs", moto_server)

    url = created["SyncDeadLetterQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert stack.functions["SyncFunction"].environment["DLQ_URL"] == url
    assert stack.functions["SyncFunction"].environment["DLQ_ARN"] == attributes["QueueArn"]


def test_topic_exists_under_the_arn_functions_are_given(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    stack, created = fixture_stack
    sns = _client("sns", moto_server)

    attributes = sns.get_topic_attributes(TopicArn=created["AlarmTopic"])["Attributes"]

    assert attributes["DisplayName"] == "fixture-stack alarms"
    assert stack.functions["SyncFunction"].environment["TOPIC_ARN"] == created["AlarmTopic"]


def test_vanta_secret_holds_the_credentials_under_the_arn_the_sync_function_gets(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    stack, created = fixture_stack
    secrets = _client("secretsmanager", moto_server)

    arn = stack.functions["SyncFunction"].environment["VANTA_SECRET_ARN"]
    value = secrets.get_secret_value(SecretId=arn)["SecretString"]

    assert arn == created[VANTA_SECRET_PARAMETER] == stack.parameters[VANTA_SECRET_PARAMETER]
    assert json.loads(value) == VANTA


def test_creating_the_resources_twice_changes_nothing(
    moto_server: MotoServer, fixture_stack: tuple[StackSpec, dict[str, str]]
) -> None:
    stack, created = fixture_stack

    again = create_stack_resources(stack, moto_server.endpoint_url, vanta_credentials=VANTA)

    assert again == created


def test_queues_with_redrive_and_fifo_and_provisioned_tables_are_created(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """
Resources:
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dead.Arn
        maxReceiveCount: 3
  Dead:
    Type: AWS::SQS::Queue
  Ordered:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true, ContentBasedDeduplication: true}
  Counters:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: N}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      ProvisionedThroughput: {ReadCapacityUnits: 2, WriteCapacityUnits: 3}
""",
        encoding="utf-8",
    )
    sqs = _client("sqs", moto_server)

    stack, created = prepare_local_stack(
        template, moto_server.endpoint_url, vanta_credentials=VANTA, stack_name="queues"
    )

    work = sqs.get_queue_attributes(QueueUrl=created["Work"], AttributeNames=["All"])
    redrive = json.loads(work["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":queues-dead")
    assert work["Attributes"]["VisibilityTimeout"] == "120"
    assert created["Ordered"].endswith("/queues-ordered.fifo")
    table = _client("dynamodb", moto_server).describe_table(TableName=created["Counters"])
    assert table["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert VANTA_SECRET_PARAMETER not in stack.parameters


def test_stack_loaded_with_another_secret_arn_is_refused(moto_server: MotoServer) -> None:
    stack = load_stack(
        FIXTURE_TEMPLATE,
        overrides={VANTA_SECRET_PARAMETER: "arn:aws:secretsmanager:us-east-1:1:secret:wrong"},
        stack_name="wrong-secret",
    )

    with pytest.raises(AwsEmulatorError, match="load it with overrides"):
        create_stack_resources(stack, moto_server.endpoint_url, vanta_credentials=VANTA)


def test_stack_read_for_another_account_is_refused(moto_server: MotoServer) -> None:
    stack = load_stack(
        FIXTURE_TEMPLATE,
        overrides={VANTA_SECRET_PARAMETER: "arn:aws:secretsmanager:us-east-1:1:secret:x"},
        stack_name="other-account",
        account_id="000000000000",
    )

    with pytest.raises(AwsEmulatorError, match="runs account 123456789012 but the stack was read"):
        create_stack_resources(stack, moto_server.endpoint_url, vanta_credentials=VANTA)


def test_function_environment_reaches_the_emulator_without_explicit_settings(
    moto_server: MotoServer,
    fixture_stack: tuple[StackSpec, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, _ = fixture_stack
    environment = {
        **stack.functions["SyncFunction"].environment,
        **aws_environment(moto_server.endpoint_url, REGION),
    }
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    # What a function's adapter does: a plain client, configured only by its environment.
    table = boto3.session.Session().client("dynamodb")
    table.put_item(TableName=environment["TABLE_NAME"], Item={"pk": {"S": "p"}, "sk": {"S": "s"}})
    count = table.scan(TableName=environment["TABLE_NAME"])["Count"]

    assert count >= 1
    assert set(aws_environment(moto_server.endpoint_url, REGION)) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    }


def test_taken_port_gives_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(MotoPortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_moto("127.0.0.1", port)


def test_non_loopback_address_is_refused() -> None:
    with pytest.raises(AwsEmulatorError, match="loopback only"):
        start_moto("0.0.0.0", 0)  # noqa: S104 - the point of the test


def test_real_template_resources_are_created(moto_server: MotoServer) -> None:
    if not REAL_TEMPLATE.exists():
        pytest.skip(f"{REAL_TEMPLATE} does not exist yet")

    stack, created = prepare_local_stack(
        REAL_TEMPLATE,
        moto_server.endpoint_url,
        vanta_credentials=VANTA,
        stack_name="real-stack",
        region=REGION,
    )

    dynamodb = _client("dynamodb", moto_server)
    s3 = _client("s3", moto_server)
    sqs = _client("sqs", moto_server)
    sns = _client("sns", moto_server)
    for spec in stack.resources_of_type("AWS::DynamoDB::Table"):
        table = dynamodb.describe_table(TableName=created[spec.logical_id])["Table"]
        keys = {k["AttributeName"] for k in table["KeySchema"]}
        assert keys == {k["AttributeName"] for k in spec.properties["KeySchema"]}
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        expected = {i["IndexName"] for i in spec.properties.get("GlobalSecondaryIndexes", [])}
        assert indexes == expected
        if "TimeToLiveSpecification" in spec.properties:
            ttl = dynamodb.describe_time_to_live(TableName=created[spec.logical_id])
            status = ttl["TimeToLiveDescription"]["TimeToLiveStatus"]
            assert status == "ENABLED"
    for spec in stack.resources_of_type("AWS::S3::Bucket"):
        versioning = s3.get_bucket_versioning(Bucket=created[spec.logical_id])
        wanted = spec.properties.get("VersioningConfiguration", {}).get("Status")
        assert versioning.get("Status") == wanted
    for spec in stack.resources_of_type("AWS::SQS::Queue"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=created[spec.logical_id], AttributeNames=["MessageRetentionPeriod"]
        )["Attributes"]
        wanted_retention = str(spec.properties.get("MessageRetentionPeriod", 345600))
        assert attributes["MessageRetentionPeriod"] == wanted_retention
    for spec in stack.resources_of_type("AWS::SNS::Topic"):
        assert sns.get_topic_attributes(TopicArn=created[spec.logical_id])["Attributes"]
    secret_arn = stack.functions["SyncFunction"].environment["VANTA_SECRET_ARN"]
    secret = _client("secretsmanager", moto_server).get_secret_value(SecretId=secret_arn)
    assert json.loads(secret["SecretString"]) == VANTA
    assert stack.resources_of_type("AWS::DynamoDB::Table"), "template.yaml defines no table"
    state_table = dynamodb.describe_table(
        TableName=created[stack.resources_of_type("AWS::DynamoDB::Table")[0].logical_id]
    )["Table"]
    assert [i["IndexName"] for i in state_table["GlobalSecondaryIndexes"]] == ["gsi1"]
