"""The one class that talks to the Lambda API: invocations, configurations and the waiter."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    WaiterError,
)

from localstage.report_line import ReportLine, ReportParseError, parse_log_tail
from perftest.errors import AccessDeniedError, FunctionNotFoundError, GatewayError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FunctionConfig", "Invocation", "LambdaGateway"]

_DENIED: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
    }
)
_THROTTLED: Final = frozenset({"TooManyRequestsException", "ThrottlingException"})


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """What the tool reads, changes and restores of a function's configuration."""

    name: str
    arn: str
    memory_mb: int
    timeout_s: int
    runtime: str
    architecture: str
    environment: dict[str, str]
    revision_id: str | None
    state: str | None
    last_update_status: str | None
    snap_start: str | None  # "On" when SnapStart applies to published versions


@dataclass(frozen=True, slots=True)
class Invocation:
    """One measured invocation: client round trip and what Lambda reported."""

    round_trip_ms: float
    report: ReportLine | None
    status: str  # ok | function_error | timeout | throttled | error
    error: str | None = None
    started_at: float = field(default=0.0)

    @property
    def succeeded(self) -> bool:
        """The function ran and answered without error."""
        return self.status == "ok"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


class LambdaGateway:
    """Lambda calls of one target (one client: one endpoint, region and credentials).

    boto3's own retries must be off on the client (max_attempts 1): a throttle is counted,
    never retried behind the tool's back.
    """

    def __init__(
        self,
        client: Any,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        waiter_delay_s: int = 2,
        waiter_max_attempts: int = 150,
    ) -> None:
        self._client = client
        self._clock = clock
        self._wall_clock = wall_clock
        self._waiter_config = {"Delay": waiter_delay_s, "MaxAttempts": waiter_max_attempts}

    def _fail(self, error: ClientError, function: str, action: str) -> GatewayError:
        code = _code(error)
        if code == "ResourceNotFoundException":
            return FunctionNotFoundError(
                f"function {function!r} not found ({_message(error)}); check the name, region "
                "and account (list them with `aws lambda list-functions`)"
            )
        if code in _DENIED:
            return AccessDeniedError(
                f"not allowed to {action} {function!r}: {code}: {_message(error)}; the "
                "credentials need lambda:GetFunctionConfiguration, lambda:InvokeFunction and, "
                "for cold and sweep modes, lambda:UpdateFunctionConfiguration"
            )
        return GatewayError(f"{action} {function!r} failed: {code}: {_message(error)}")

    def _call(self, operation: str, function: str, action: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as error:
            raise self._fail(error, function, action) from error
        except NoCredentialsError as error:
            raise AccessDeniedError(
                f"no AWS credentials to {action} {function!r}: set a profile (--profile) or "
                "the usual AWS_* variables"
            ) from error
        except EndpointConnectionError as error:
            raise GatewayError(f"cannot reach the Lambda endpoint: {error}") from error
        except BotoCoreError as error:
            raise GatewayError(f"{action} {function!r} failed: {error}") from error

    # Configuration
    def configuration(self, function: str) -> FunctionConfig:
        """GetFunctionConfiguration, read into a FunctionConfig."""
        answer = self._call(
            "get_function_configuration",
            function,
            "read the configuration of",
            FunctionName=function,
        )
        return _config(answer)

    def update(
        self,
        function: str,
        *,
        environment: Mapping[str, str],
        memory_mb: int | None = None,
    ) -> FunctionConfig:
        """UpdateFunctionConfiguration with a whole environment (and a memory size)."""
        kwargs: dict[str, Any] = {
            "FunctionName": function,
            "Environment": {"Variables": dict(environment)},
        }
        if memory_mb is not None:
            kwargs["MemorySize"] = memory_mb
        answer = self._call(
            "update_function_configuration", function, "update the configuration of", **kwargs
        )
        return _config(answer)

    def wait_updated(self, function: str) -> None:
        """Block until the update is live (the function_updated waiter: LastUpdateStatus)."""
        try:
            self._client.get_waiter("function_updated").wait(
                FunctionName=function, WaiterConfig=self._waiter_config
            )
        except WaiterError as error:
            reason = error.last_response.get("LastUpdateStatusReason") or error
            raise GatewayError(f"{function!r} did not finish updating: {reason}") from error

    def check_invoke(self, function: str, qualifier: str | None) -> None:
        """An Invoke with InvocationType=DryRun: permission and existence, nothing runs."""
        extra = {"Qualifier": qualifier} if qualifier else {}
        self._call(
            "invoke",
            function,
            "invoke",
            FunctionName=function,
            InvocationType="DryRun",
            Payload=b"{}",
            **extra,
        )

    # Invocation
    def invoke(self, function: str, payload: bytes, qualifier: str | None = None) -> Invocation:
        """One synchronous invocation with LogType=Tail; failures become a status, not raises.

        Only AccessDenied and a missing function raise: they end the run.
        """
        extra = {"Qualifier": qualifier} if qualifier else {}
        started_at = self._wall_clock()
        start = self._clock()
        try:
            answer = self._client.invoke(
                FunctionName=function, Payload=payload, LogType="Tail", **extra
            )
            body = answer["Payload"].read()
        except ClientError as error:
            elapsed = (self._clock() - start) * 1000
            code = _code(error)
            if code in _THROTTLED:
                return Invocation(elapsed, None, "throttled", code, started_at)
            if code == "ResourceNotFoundException" or code in _DENIED:
                raise self._fail(error, function, "invoke") from error
            return Invocation(elapsed, None, "error", f"{code}: {_message(error)}", started_at)
        except BotoCoreError as error:
            elapsed = (self._clock() - start) * 1000
            return Invocation(
                elapsed, None, "error", f"{type(error).__name__}: {error}", started_at
            )
        elapsed = (self._clock() - start) * 1000
        return _answered(answer, body, elapsed, started_at)


def _answered(
    answer: Mapping[str, Any], body: bytes, elapsed: float, started_at: float
) -> Invocation:
    """Classify an invocation Lambda answered: ok, function error, timeout, or no REPORT."""
    log = base64.b64decode(answer.get("LogResult") or b"").decode(errors="replace")
    try:
        report: ReportLine | None = parse_log_tail(log)
        problem = None
    except ReportParseError as error:
        report, problem = None, f"no REPORT line in the log tail: {error}"
    if report is not None and report.status == "timeout":
        return Invocation(elapsed, report, "timeout", "Status: timeout", started_at)
    if answer.get("FunctionError"):
        detail = body[:300].decode(errors="replace")
        reason = f"{answer['FunctionError']}: {detail}"
        return Invocation(elapsed, report, "function_error", reason, started_at)
    if report is None:
        return Invocation(elapsed, None, "error", problem, started_at)
    return Invocation(elapsed, report, "ok", None, started_at)


def _config(answer: Mapping[str, Any]) -> FunctionConfig:
    architectures = answer.get("Architectures") or ["x86_64"]
    snap = answer.get("SnapStart") or {}
    return FunctionConfig(
        name=str(answer["FunctionName"]),
        arn=str(answer.get("FunctionArn", "")),
        memory_mb=int(answer.get("MemorySize", 128)),
        timeout_s=int(answer.get("Timeout", 3)),
        runtime=str(answer.get("Runtime", "")),
        architecture=str(architectures[0]),
        environment=dict((answer.get("Environment") or {}).get("Variables") or {}),
        revision_id=answer.get("RevisionId"),
        state=answer.get("State"),
        last_update_status=answer.get("LastUpdateStatus"),
        snap_start=snap.get("ApplyOn"),
    )
