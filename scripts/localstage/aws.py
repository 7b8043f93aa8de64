"""AWS service emulator: loopback moto with the stack's buckets, tables, queues, topic, secret."""

from __future__ import annotations

import errno
import functools
import ipaddress
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localstage.cfn import load_template
from localstage.ports import probe_port
from localstage.template import load_stack
from locate import DUMMY_CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from localstage.spec import ResourceSpec, StackSpec

__all__ = [
    "VANTA_SECRET_PARAMETER",
    "AwsEmulatorError",
    "MotoPortInUseError",
    "MotoServer",
    "aws_environment",
    "create_stack_resources",
    "create_vanta_secret",
    "local_client",
    "prepare_local_stack",
    "send_dead_letter",
    "start_moto",
    "vanta_secret_name",
]

logger = logging.getLogger(__name__)

VANTA_SECRET_PARAMETER: Final = "VantaSecretArn"  # noqa: S105 - a parameter name
_START_TIMEOUT_S: Final = 30.0
_STOP_TIMEOUT_S: Final = 5.0
_CLIENT_CONFIG: Final = Config(
    connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
)
_QUEUE_ATTRIBUTES: Final = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
)  # KmsMasterKeyId is left out: the emulator holds no KMS key, and moto does not encrypt.


class AwsEmulatorError(Exception):
    """The AWS emulator could not be started or set up."""


class MotoPortInUseError(AwsEmulatorError):
    """The requested loopback port is taken by another process."""


# --------------------------------------------------------------------------- the server


@dataclass(slots=True)
class MotoServer:
    """A moto server running in its own process, bound to a loopback address."""

    host: str
    port: int
    account_id: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    remove_log_on_stop: bool = False

    @property
    def endpoint_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the server process (terminate, then kill if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=_STOP_TIMEOUT_S)
        if self.remove_log_on_stop:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _check_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise AwsEmulatorError(f"the AWS emulator binds to loopback only, not {host!r}")


def _reserve_port(host: str, port: int) -> int:
    """Check that the port is free (and pick one when port is 0); the socket is closed again."""
    try:
        return probe_port(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MotoPortInUseError(
                f"port {port} on {host} is already in use; stop what holds it or pass port=0"
            ) from exc
        raise AwsEmulatorError(f"cannot bind {host}:{port}: {exc}") from exc


_LOOPBACK_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _ready(endpoint_url: str) -> bool:
    try:
        with _LOOPBACK_OPENER.open(f"{endpoint_url}/moto-api/config", timeout=1) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def _spawn(host: str, port: int, account_id: str, log_path: Path) -> MotoServer:
    environment = {**os.environ, "MOTO_ACCOUNT_ID": account_id}
    # A proxy setting would send our loopback requests elsewhere.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        environment.pop(name, None)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    return MotoServer(
        host=host, port=port, account_id=account_id, log_path=log_path, process=process
    )


def start_moto(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    account_id: str = "123456789012",
    log_path: Path | None = None,
    start_timeout_s: float = _START_TIMEOUT_S,
) -> MotoServer:
    """Start a moto server on a loopback port (0 picks a free one) and wait until it answers.

    The server runs as `python -m moto.server` in its own process: its request handling does not
    compete with the local runtime for the GIL, it is stopped cleanly as a process, and moto's
    global state never mixes with mocks in the caller. Raises MotoPortInUseError for a taken port.
    """
    _check_loopback(host)
    chosen = _reserve_port(host, port)
    temporary_log = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="moto-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    attempts = 3 if port == 0 else 1
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            chosen = _reserve_port(host, port)
        log_offset = log_path.stat().st_size
        server = _spawn(host, chosen, account_id, log_path)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if not server.running():
                break
            if _ready(server.endpoint_url) and server.running():
                server.remove_log_on_stop = temporary_log
                logger.info("moto server ready", extra={"endpoint_url": server.endpoint_url})
                return server
            time.sleep(0.05)
        else:
            server.stop()
            raise AwsEmulatorError(
                f"moto server on {host}:{chosen} did not answer within {start_timeout_s:.0f} s; "
                f"see {log_path}"
            )
        with log_path.open("rb") as log:
            log.seek(log_offset)
            output = log.read().decode("utf-8", errors="replace")
        if "Address already in use" in output and attempt < attempts:
            continue  # another process took the free port between our probe and moto's bind
        if "Address already in use" in output:
            raise MotoPortInUseError(f"port {chosen} on {host} is already in use")
        raise AwsEmulatorError(
            f"moto server exited with code {server.process.returncode}:\n{output[-2000:]}"
        )
    raise AwsEmulatorError(f"moto server could not bind a free port on {host}")  # pragma: no cover


def aws_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Variables that point a function's boto3 at the emulator, with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": DUMMY_CREDENTIALS["aws_session_token"],
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


# --------------------------------------------------------------------------- resources


@functools.lru_cache(maxsize=32)
def _client(service: str, endpoint_url: str, region: str) -> Any:
    # Cached: botocore clients are thread-safe, and building one costs tens of milliseconds.
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        config=_CLIENT_CONFIG,
        **DUMMY_CREDENTIALS,
    )


def local_client(service: str, endpoint_url: str, region: str = "us-east-1") -> Any:
    """A boto3 client for the emulator with its dummy credentials (scripts and tests use it)."""
    return _client(service, endpoint_url, region)


def send_dead_letter(
    endpoint_url: str,
    region: str,
    queue_url: str,
    body: bytes,
    *,
    request_id: str,
    error_message: str,
) -> None:
    """Send a failed asynchronous event to its dead-letter queue as Lambda does: the event as the
    body, and the RequestID, ErrorCode and ErrorMessage message attributes."""
    try:
        local_client("sqs", endpoint_url, region).send_message(
            QueueUrl=queue_url,
            MessageBody=body.decode(errors="replace"),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": error_message[:1024] or "-"},
            },
        )
    except (BotoCoreError, ClientError) as exc:
        raise AwsEmulatorError(f"dead-letter delivery to {queue_url} failed: {exc}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def vanta_secret_name(stack_name: str) -> str:
    """The local name of the Vanta credentials secret."""
    return f"{stack_name}/vanta-credentials"


def create_vanta_secret(
    endpoint_url: str,
    *,
    vanta_credentials: Mapping[str, str],
    stack_name: str = "vulnstats-local",
    region: str = "us-east-1",
) -> str:
    """Create (or update) the Vanta credentials secret and return its ARN.

    The ARN ends in a random suffix chosen by the emulator, so it is known only once the secret
    exists: pass it to load_stack as overrides={VANTA_SECRET_PARAMETER: arn}.
    """
    missing = {"client_id", "client_secret"} - set(vanta_credentials)
    if missing:
        raise AwsEmulatorError(f"vanta_credentials lacks {', '.join(sorted(missing))}")
    secret = json.dumps(
        {
            "client_id": vanta_credentials["client_id"],
            "client_secret": vanta_credentials["client_secret"],
        }
    )
    client = _client("secretsmanager", endpoint_url, region)
    name = vanta_secret_name(stack_name)
    try:
        return str(client.create_secret(Name=name, SecretString=secret)["ARN"])
    except ClientError as exc:
        if _error_code(exc) != "ResourceExistsException":
            raise
    client.put_secret_value(SecretId=name, SecretString=secret)
    return str(client.describe_secret(SecretId=name)["ARN"])


def create_stack_resources(
    stack: StackSpec,
    endpoint_url: str,
    *,
    vanta_credentials: Mapping[str, str],
) -> dict[str, str]:
    """Create the stack's buckets, tables, queues, topics and secrets in the emulator.

    Returns logical id -> bucket name / table name / queue URL / topic ARN / secret ARN, plus
    VANTA_SECRET_PARAMETER -> the Vanta secret's ARN. Safe to call again on the same server.
    """
    created: dict[str, str] = {}
    secret_arn = create_vanta_secret(
        endpoint_url,
        vanta_credentials=vanta_credentials,
        stack_name=stack.stack_name,
        region=stack.region,
    )
    emulator_account = secret_arn.split(":")[4]
    if emulator_account != stack.account_id:
        raise AwsEmulatorError(
            f"the emulator runs account {emulator_account} but the stack was read for "
            f"{stack.account_id}; use the same account_id for start_moto and load_stack"
        )
    configured = stack.parameters.get(VANTA_SECRET_PARAMETER)
    if configured is not None and configured != secret_arn:
        raise AwsEmulatorError(
            f"the stack was loaded with {VANTA_SECRET_PARAMETER}={configured!r}, but the local "
            f"secret is {secret_arn}; load it with overrides={{{VANTA_SECRET_PARAMETER!r}: arn}} "
            "(prepare_local_stack does this)"
        )
    created[VANTA_SECRET_PARAMETER] = secret_arn
    creators = {
        "AWS::S3::Bucket": _create_bucket,
        "AWS::DynamoDB::Table": _create_table,
        "AWS::SQS::Queue": _create_queue,
        "AWS::SNS::Topic": _create_topic,
        "AWS::SecretsManager::Secret": _create_secret,
    }
    # Queues first so that a redrive policy finds its target.
    ordered = sorted(
        stack.resources.values(),
        key=lambda spec: (spec.type != "AWS::SQS::Queue", "RedrivePolicy" in spec.properties),
    )
    for spec in ordered:
        creator = creators.get(spec.type)
        if creator is None:
            continue
        try:
            created[spec.logical_id] = creator(spec, endpoint_url, stack.region)
        except ClientError as exc:
            raise AwsEmulatorError(f"Resources.{spec.logical_id} ({spec.type}): {exc}") from exc
    logger.info("stack resources created", extra={"resources": sorted(created)})
    return created


def prepare_local_stack(
    template_path: Path,
    endpoint_url: str,
    *,
    vanta_credentials: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    stack_name: str = "vulnstats-local",
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> tuple[StackSpec, dict[str, str]]:
    """Secret first, then the template read with its ARN as VantaSecretArn, then every resource.

    This is the local stage's start-up sequence; the returned map is create_stack_resources'.
    """
    secret_arn = create_vanta_secret(
        endpoint_url, vanta_credentials=vanta_credentials, stack_name=stack_name, region=region
    )
    merged = dict(overrides or {})
    if VANTA_SECRET_PARAMETER in (load_template(template_path).get("Parameters") or {}):
        merged[VANTA_SECRET_PARAMETER] = secret_arn
    stack = load_stack(
        template_path,
        overrides=merged,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
    )
    return stack, create_stack_resources(stack, endpoint_url, vanta_credentials=vanta_credentials)


def _create_bucket(spec: ResourceSpec, endpoint_url: str, region: str) -> str:
    client = _client("s3", endpoint_url, region)
    arguments: dict[str, Any] = {"Bucket": spec.physical_name}
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**arguments)
    except ClientError as exc:
        if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    versioning = spec.properties.get("VersioningConfiguration")
    if isinstance(versioning, dict) and versioning.get("Status"):
        client.put_bucket_versioning(
            Bucket=spec.physical_name,
            VersioningConfiguration={"Status": str(versioning["Status"])},
        )
    block = spec.properties.get("PublicAccessBlockConfiguration")
    if isinstance(block, dict):
        client.put_public_access_block(
            Bucket=spec.physical_name,
            PublicAccessBlockConfiguration={key: bool(value) for key, value in block.items()},
        )
    return spec.physical_name


def _throughput(value: Any) -> dict[str, int]:
    value = value if isinstance(value, dict) else {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _index(index: Mapping[str, Any], provisioned: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "IndexName": index["IndexName"],
        "KeySchema": index["KeySchema"],
        "Projection": index.get("Projection", {"ProjectionType": "ALL"}),
    }
    if provisioned:
        result["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
    return result


def _create_table(spec: ResourceSpec, endpoint_url: str, region: str) -> str:
    client = _client("dynamodb", endpoint_url, region)
    properties = spec.properties
    for required in ("KeySchema", "AttributeDefinitions"):
        if required not in properties:
            raise AwsEmulatorError(f"Resources.{spec.logical_id}.Properties.{required}: missing")
    billing_mode = str(properties.get("BillingMode", "PROVISIONED"))
    provisioned = billing_mode == "PROVISIONED"
    arguments: dict[str, Any] = {
        "TableName": spec.physical_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": billing_mode,
    }
    if provisioned:
        arguments["ProvisionedThroughput"] = _throughput(properties.get("ProvisionedThroughput"))
    if properties.get("GlobalSecondaryIndexes"):
        arguments["GlobalSecondaryIndexes"] = [
            _index(index, provisioned) for index in properties["GlobalSecondaryIndexes"]
        ]
    if properties.get("LocalSecondaryIndexes"):
        arguments["LocalSecondaryIndexes"] = [
            _index(index, provisioned=False) for index in properties["LocalSecondaryIndexes"]
        ]
    stream = properties.get("StreamSpecification")
    if isinstance(stream, dict) and stream.get("StreamViewType"):
        arguments["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    try:
        client.create_table(**arguments)
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
    ttl = properties.get("TimeToLiveSpecification")
    if isinstance(ttl, dict) and ttl.get("AttributeName"):
        enabled = ttl.get("Enabled") in (True, "true", "True")
        current = client.describe_time_to_live(TableName=spec.physical_name)
        status = current["TimeToLiveDescription"].get("TimeToLiveStatus", "DISABLED")
        if (status == "ENABLED") != enabled:
            client.update_time_to_live(
                TableName=spec.physical_name,
                TimeToLiveSpecification={
                    "AttributeName": str(ttl["AttributeName"]),
                    "Enabled": enabled,
                },
            )
    recovery = properties.get("PointInTimeRecoverySpecification")
    if isinstance(recovery, dict) and recovery.get("PointInTimeRecoveryEnabled") in (True, "true"):
        client.update_continuous_backups(
            TableName=spec.physical_name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return spec.physical_name


def _queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for name in _QUEUE_ATTRIBUTES:
        if name in properties:
            value = properties[name]
            attributes[name] = str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(properties.get("RedrivePolicy"), dict):
        attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
    return attributes


def _create_queue(spec: ResourceSpec, endpoint_url: str, region: str) -> str:
    client = _client("sqs", endpoint_url, region)
    attributes = _queue_attributes(spec.properties)
    try:
        return str(
            client.create_queue(QueueName=spec.physical_name, Attributes=attributes)["QueueUrl"]
        )
    except ClientError as exc:
        if _error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    # The queue exists with other attributes (a changed template): bring them up to date.
    url = str(client.get_queue_url(QueueName=spec.physical_name)["QueueUrl"])
    mutable = {key: value for key, value in attributes.items() if key not in ("FifoQueue",)}
    if mutable:
        client.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    return url


def _create_topic(spec: ResourceSpec, endpoint_url: str, region: str) -> str:
    client = _client("sns", endpoint_url, region)
    attributes = {
        key: str(spec.properties[key]).lower()
        if isinstance(spec.properties[key], bool)
        else str(spec.properties[key])
        for key in ("DisplayName", "FifoTopic", "ContentBasedDeduplication")
        if key in spec.properties
    }
    return str(client.create_topic(Name=spec.physical_name, Attributes=attributes)["TopicArn"])


def _create_secret(spec: ResourceSpec, endpoint_url: str, region: str) -> str:
    client = _client("secretsmanager", endpoint_url, region)
    value = spec.properties.get("SecretString")
    secret = value if isinstance(value, str) else json.dumps({"local": "placeholder"})
    try:
        return str(client.create_secret(Name=spec.physical_name, SecretString=secret)["ARN"])
    except ClientError as exc:
        if _error_code(exc) != "ResourceExistsException":
            raise
    return str(client.describe_secret(SecretId=spec.physical_name)["ARN"])
