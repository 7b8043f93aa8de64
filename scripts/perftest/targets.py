"""Where the functions are: names or ARNs, a CloudFormation stack's outputs, or the local stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from locate import StageInfo, local_session, stack_outputs
from perftest.errors import AccessDeniedError, GatewayError, UsageError

if TYPE_CHECKING:
    from perftest.gateway import FunctionConfig, LambdaGateway
    from perftest.payloads import Payload

__all__ = [
    "Endpoint",
    "Target",
    "aws_clients",
    "list_functions",
    "split_qualifier",
    "stack_functions",
]

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

    @classmethod
    def of_stage(cls, stage: StageInfo) -> Endpoint:
        """A local stage's Invoke API and emulator, and its functions by logical id."""
        return cls(
            kind="local",
            region=stage.region,
            lambda_endpoint_url=stage.invoke_endpoint_url,
            cloudwatch_endpoint_url=stage.aws_endpoint_url,
            stack_name=stage.stack_name,
            functions=dict(stage.functions),
        )

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
            session = local_session(endpoint.region)
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
    found = {
        key[: -len("Name")]: value
        for key, value in stack_outputs(session, stack_name).items()
        if key.endswith(_OUTPUT_SUFFIX)
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
