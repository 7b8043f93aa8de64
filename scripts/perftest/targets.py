"""Where the functions are: names or ARNs, a CloudFormation stack's outputs, or the local stage,
and the targets (function, payload, configuration) resolved from the command line."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from locate import StageInfo, local_session, local_stage, samconfig_environment, stack_outputs
from perftest.errors import AccessDeniedError, GatewayError, UsageError
from perftest.gateway import LambdaGateway
from perftest.payloads import default_fixture, load_payload

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

    from localstage.stage import StageConfig
    from perftest.gateway import FunctionConfig
    from perftest.payloads import Payload

__all__ = [
    "Endpoint",
    "Target",
    "aws_clients",
    "endpoint_for",
    "list_functions",
    "resolve_targets",
    "split_qualifier",
    "stack_functions",
]

_OUTPUT_SUFFIX: Final = "FunctionName"
# Modes that change the measured function's configuration, which a version or alias cannot have.
_CHANGES_CONFIGURATION: Final = ("cold", "sweep", "full")


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


# ---------------------------------------------------------------- endpoints


def _private_config(findings: int) -> StageConfig:
    # The local stage is heavy (moto, awslambdaric): imported only when a private one is needed.
    from localstage.stage import StageConfig  # noqa: PLC0415
    from localstage.vanta_data import Dataset  # noqa: PLC0415

    return StageConfig.ephemeral(
        stack_name="perftest-local",
        dataset=Dataset(
            seed=7,
            vulnerability_count=findings,
            asset_count=max(1, findings // 10),
            remediation_count=findings // 2,
            now=dt.datetime.now(dt.UTC),
        ),
    )


@contextlib.contextmanager
def endpoint_for(args: argparse.Namespace, say: Callable[[str], None]) -> Iterator[Endpoint]:
    """Resolve where the functions are; may start (and stop) a private local stage."""
    chosen = [
        name
        for name, given in (
            ("--stack", args.stack),
            ("--samconfig-env", args.samconfig_env),
            ("--local", args.local),
            ("--endpoint-url", args.endpoint_url),
        )
        if given
    ]
    if len(chosen) > 1:
        raise UsageError(f"choose one target among {', '.join(chosen)}")
    if args.local:

        def announce() -> None:
            say(
                "no local stage is running: starting a private one on free ports "
                "(stopped at the end)"
            )
            say(f"first sync of {args.findings} findings so the API reads real data (not measured)")

        with local_stage(
            args.state_file,
            lambda: _private_config(args.findings),
            sync_reason="performance_test private stage",
            announce=announce,
            say=say,
        ) as stage:
            yield Endpoint.of_stage(stage)
        return
    if args.endpoint_url:
        yield Endpoint(
            kind="endpoint",
            region=args.region or "us-east-1",
            lambda_endpoint_url=args.endpoint_url,
            cloudwatch_endpoint_url=args.cloudwatch_endpoint_url,
        )
        return
    stack, region = args.stack, args.region
    if args.samconfig_env:
        environment = samconfig_environment(args.samconfig_env, args.samconfig)
        stack, region = environment.stack(), region or environment.region
    if stack:
        yield Endpoint(
            kind="stack",
            region=region,
            profile=args.profile,
            stack_name=stack,
            cloudwatch_endpoint_url=args.cloudwatch_endpoint_url,
        )
        return
    if not args.function:
        raise UsageError(
            "nothing to measure: name functions (--function), a stack (--stack), a samconfig "
            "environment (--samconfig-env) or the local stage (--local / --endpoint-url)"
        )
    yield Endpoint(
        kind="functions",
        region=region,
        profile=args.profile,
        cloudwatch_endpoint_url=args.cloudwatch_endpoint_url,
    )


# ---------------------------------------------------------------- targets


def _payload_overrides(items: Sequence[str]) -> tuple[dict[str, Path], Path | None]:
    per_function: dict[str, Path] = {}
    everyone: Path | None = None
    for item in items:
        name, sep, file = item.partition("=")
        if sep:
            per_function[name] = Path(file)
        elif everyone is None:
            everyone = Path(item)
        else:
            raise UsageError("--payload FILE without FUNCTION= may be given once")
    return per_function, everyone


def _candidates(
    endpoint: Endpoint, session: Any, client: Any, wanted: Sequence[str]
) -> dict[str, str]:
    if endpoint.kind == "functions":
        return {split_qualifier(name)[0].rsplit(":", 1)[-1]: name for name in wanted}
    if endpoint.kind == "stack":
        assert endpoint.stack_name is not None  # noqa: S101 - set for every stack endpoint
        known = stack_functions(session, endpoint.stack_name)
    elif endpoint.functions:
        known = dict(endpoint.functions)
    else:
        known = list_functions(client)
    if not wanted:
        return known
    chosen: dict[str, str] = {}
    for name in wanted:
        bare, qualifier = split_qualifier(name)
        match = [label for label, physical in known.items() if bare in (label, physical)]
        if not match:
            raise UsageError(
                f"unknown function {name!r}; this {endpoint.kind} target has: {', '.join(known)}"
            )
        label = match[0]
        chosen[label] = f"{known[label]}:{qualifier}" if qualifier else known[label]
    return chosen


def resolve_targets(
    args: argparse.Namespace, endpoint: Endpoint, client: Any, session: Any
) -> list[Target]:
    """Read every function's configuration and payload; nothing is changed here."""
    gateway = LambdaGateway(client, waiter_delay_s=1 if endpoint.local else 2)
    per_function, everyone = _payload_overrides(args.payload)
    candidates = _candidates(endpoint, session, client, args.function)
    unknown = set(per_function) - set(candidates) - set(candidates.values())
    if unknown:
        raise UsageError(
            f"--payload names {', '.join(sorted(unknown))}, which is not measured here "
            f"(measured: {', '.join(candidates)})"
        )
    targets = []
    for label, name in candidates.items():
        function, qualifier = split_qualifier(name)
        if qualifier and args.mode in _CHANGES_CONFIGURATION:
            raise UsageError(
                f"{name}: a published version or alias cannot change its configuration, so "
                f"{args.mode} cannot force cold starts on it; measure the unqualified function "
                "($LATEST, same code after a SAM deploy) or use warm/concurrent/metrics"
            )
        config = gateway.configuration(function)
        gateway.check_invoke(function, qualifier)
        path = (
            per_function.get(label)
            or per_function.get(name)
            or everyone
            or default_fixture(label, name)
        )
        if path is None:
            raise UsageError(
                f"no default payload for {label}; pass --payload {label}=events/<file>.json"
            )
        payload: Payload = load_payload(path, function=label, allow_sync_runs=args.allow_sync_runs)
        targets.append(Target(label, function, qualifier, gateway, payload, config))
    return targets
