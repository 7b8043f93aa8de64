"""Where the functions are: names or ARNs, a CloudFormation stack's outputs, or the local stage."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from perftest.errors import AccessDeniedError, GatewayError, UsageError

if TYPE_CHECKING:
    from perftest.gateway import FunctionConfig, LambdaGateway
    from perftest.payloads import Payload

__all__ = [
    "STATE_FILE",
    "Endpoint",
    "Target",
    "aws_clients",
    "list_functions",
    "read_samconfig",
    "read_stage_file",
    "split_qualifier",
    "stack_functions",
]

REPO: Final = Path(__file__).resolve().parents[2]
STATE_FILE: Final = REPO / ".local" / "stage.json"
# The local stage's emulators accept any key; these keep real credentials out of the requests.
_LOCAL_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_OUTPUT_SUFFIX: Final = "FunctionName"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach the functions: region, profile or local endpoints, and which functions."""

    kind: str  # "local" (the local stage), "stack", "functions" or "endpoint"
    region: str | None
    profile: str | None = None
    lambda_endpoint_url: str | None = None
    cloudwatch_endpoint_url: str | None = None
    stack_name: str | None = None
    functions: dict[str, str] = field(default_factory=dict)  # label -> name or ARN

    @property
    def local(self) -> bool:
        """Whether the endpoints are loopback emulators (dummy credentials)."""
        return self.lambda_endpoint_url is not None

    def describe(self) -> dict[str, Any]:
        """The target block of the JSON report."""
        return {
            "kind": self.kind,
            "region": self.region,
            "profile": self.profile,
            "endpoint_url": self.lambda_endpoint_url,
            "cloudwatch_endpoint_url": self.cloudwatch_endpoint_url,
            "stack_name": self.stack_name,
        }


@dataclass(frozen=True, slots=True)
class Target:
    """One function under test, its payload and the configuration read before any change."""

    label: str
    function: str
    qualifier: str | None
    gateway: LambdaGateway
    payload: Payload
    config: FunctionConfig


def split_qualifier(name: str) -> tuple[str, str | None]:
    """``name:alias`` or a qualified ARN into (unqualified name or ARN, qualifier)."""
    if name.startswith("arn:"):
        parts = name.split(":")
        if len(parts) == 8:
            return ":".join(parts[:7]), parts[7]
        return name, None
    bare, _, qualifier = name.partition(":")
    return bare, (qualifier or None)


def read_stage_file(path: Path) -> Endpoint | None:
    """The running local stage described by its state file; None when no stage is running."""
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the local stage's state file {path}: {error}") from None
    pid = info.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return None  # a stage that died without removing its file
    return Endpoint(
        kind="local",
        region=str(info.get("region") or "us-east-1"),
        lambda_endpoint_url=str(info["invoke_endpoint_url"]),
        cloudwatch_endpoint_url=info.get("aws_endpoint_url"),
        stack_name=info.get("stack_name"),
        functions={str(k): str(v) for k, v in (info.get("functions") or {}).items()},
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_samconfig(path: Path, environment: str) -> tuple[str, str | None]:
    """(stack name, region) of a samconfig.toml environment's deploy parameters."""
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    section = config.get(environment)
    if not isinstance(section, dict):
        known = ", ".join(k for k, v in config.items() if isinstance(v, dict)) or "none"
        raise UsageError(f"{path} has no environment {environment!r} (it has: {known})")
    deploy = section.get("deploy", {}).get("parameters", {})
    stack = deploy.get("stack_name")
    if not stack:
        raise UsageError(f"{path} [{environment}.deploy.parameters] has no stack_name")
    region = deploy.get("region") or section.get("global", {}).get("parameters", {}).get("region")
    return str(stack), (str(region) if region else None)


def aws_clients(endpoint: Endpoint, *, read_timeout_s: int, pool: int) -> tuple[Any, Any]:
    """(lambda client, session) for the endpoint; boto3 retries off so throttles are counted."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 1},
        read_timeout=read_timeout_s,
        connect_timeout=10,
        max_pool_connections=pool,
    )
    try:
        if endpoint.local:
            session = boto3.session.Session(
                aws_access_key_id=_LOCAL_CREDENTIALS["aws_access_key_id"],
                aws_secret_access_key=_LOCAL_CREDENTIALS["aws_secret_access_key"],
                region_name=endpoint.region,
            )
        else:
            session = boto3.session.Session(
                profile_name=endpoint.profile, region_name=endpoint.region
            )
    except ProfileNotFound as error:
        raise UsageError(f"{error}") from None
    if session.region_name is None:
        raise UsageError("no AWS region: pass --region or set AWS_REGION / a profile region")
    client = session.client("lambda", endpoint_url=endpoint.lambda_endpoint_url, config=config)
    return client, session


def _denied(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return "AccessDenied" in code or code in ("UnrecognizedClientException", "ExpiredToken")


def stack_functions(session: Any, stack_name: str) -> dict[str, str]:
    """The functions named in a stack's outputs: ``<LogicalId>FunctionName`` -> physical name."""
    client = session.client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", error))
        if _denied(error):
            raise AccessDeniedError(
                f"not allowed to read stack {stack_name!r}: {message} "
                "(needs cloudformation:DescribeStacks)"
            ) from None
        raise UsageError(f"stack {stack_name!r}: {message}") from None
    except NoCredentialsError:
        raise AccessDeniedError(
            "no AWS credentials: set a profile (--profile) or the usual AWS_* variables"
        ) from None
    except BotoCoreError as error:
        raise GatewayError(f"cannot read stack {stack_name!r}: {error}") from None
    outputs = stacks[0].get("Outputs") or []
    found = {
        str(o["OutputKey"])[: -len("Name")]: str(o["OutputValue"])
        for o in outputs
        if str(o.get("OutputKey", "")).endswith(_OUTPUT_SUFFIX)
    }
    if not found:
        raise UsageError(f"stack {stack_name!r} has no *FunctionName outputs to measure")
    return dict(sorted(found.items()))


def list_functions(client: Any) -> dict[str, str]:
    """Every function the endpoint lists (ListFunctions, all pages): name -> name."""
    names: dict[str, str] = {}
    try:
        for page in client.get_paginator("list_functions").paginate():
            for function in page.get("Functions", []):
                names[str(function["FunctionName"])] = str(function["FunctionName"])
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", error))
        if _denied(error):
            raise AccessDeniedError(f"not allowed to list functions: {message}") from None
        raise GatewayError(f"cannot list functions: {message}") from None
    except BotoCoreError as error:
        raise GatewayError(f"cannot list functions: {error}") from None
    if not names:
        raise UsageError("the endpoint lists no functions; name them with --function")
    return names
