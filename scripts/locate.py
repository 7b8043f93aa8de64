"""How every tool finds its target: the repository, samconfig environments, stacks, local stages.

One place answers "where is it?" for the tools in scripts/: the repository root and its files,
a samconfig.toml environment (stack name, region, parameter overrides), a deployed stack's
outputs, and the running local stages (each writes its own `.local/stage*.json`; `find_stage()`
picks one and says which). A private local stage is `StageConfig.ephemeral(...)` in
localstage.stage; `local_stage()` here picks the running one or, announced, starts that private
one, synced once. Every failure is a LocateError
whose message names the file, the environment or the key that is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from localstage.stage import StageConfig

__all__ = [
    "DEFAULT_API_PORT",
    "DUMMY_CREDENTIALS",
    "REPO",
    "SAMCONFIG",
    "STATE_DIR",
    "STATE_FILE",
    "TEMPLATE",
    "LocateError",
    "SamconfigEnvironment",
    "StageInfo",
    "TargetUnavailableError",
    "find_stage",
    "live_stages",
    "local_session",
    "local_stage",
    "running_stage",
    "samconfig_environment",
    "stack_outputs",
    "state_file_for",
]

REPO: Final = Path(__file__).resolve().parents[1]
TEMPLATE: Final = REPO / "template.yaml"
SAMCONFIG: Final = REPO / "samconfig.toml"
STATE_DIR: Final = REPO / ".local"
# The stage on the default ports writes STATE_FILE; a stage on other ports writes its own file
# (state_file_for), so two stages side by side never overwrite or delete each other's.
DEFAULT_API_PORT: Final = 3000
STATE_FILE: Final = STATE_DIR / "stage.json"
# The local emulators accept any key; these keep real credentials out of every local request.
DUMMY_CREDENTIALS: Final = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class LocateError(Exception):
    """A target could not be found; the message names the file, environment or key."""


class TargetUnavailableError(LocateError):
    """The target is named right but cannot be used: access denied, no connection, or a
    private stage whose first sync failed. Tools report it as a failure, not as bad usage."""


# ------------------------------------------------------------------ samconfig.toml
@dataclass(frozen=True, slots=True)
class SamconfigEnvironment:
    """One samconfig.toml environment's deploy parameters."""

    name: str
    path: Path
    stack_name: str | None
    region: str | None
    parameter_overrides: dict[str, str] = field(default_factory=dict)

    def stack(self) -> str:
        """The stack name; a LocateError naming the section when it has none."""
        if not self.stack_name:
            raise LocateError(f"{self.path} [{self.name}.deploy.parameters] has no stack_name")
        return self.stack_name


def samconfig_environment(name: str, path: Path = SAMCONFIG) -> SamconfigEnvironment:
    """The environment `name` of a samconfig.toml (default: the repository's)."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LocateError(f"cannot read {path}: {error}") from None
    section = config.get(name)
    if not isinstance(section, dict):
        known = ", ".join(sorted(k for k, v in config.items() if isinstance(v, dict))) or "none"
        raise LocateError(f"{path} has no environment {name!r} (it has: {known})")
    deploy = section.get("deploy", {}).get("parameters", {})
    region = deploy.get("region") or section.get("global", {}).get("parameters", {}).get("region")
    overrides: dict[str, str] = {}
    for token in shlex.split(str(deploy.get("parameter_overrides", ""))):
        key, equals, value = token.partition("=")
        if not equals or not key:
            raise LocateError(
                f"{path} [{name}.deploy.parameters] parameter_overrides: "
                f"{token!r} is not Name=Value"
            )
        overrides[key] = value
    stack = deploy.get("stack_name")
    return SamconfigEnvironment(
        name=name,
        path=path,
        stack_name=str(stack) if stack else None,
        region=str(region) if region else None,
        parameter_overrides=overrides,
    )


# ------------------------------------------------------------------ deployed stacks
def _error_code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def stack_outputs(session: Any, stack_name: str) -> dict[str, str]:
    """A deployed stack's outputs (OutputKey -> OutputValue), read with the session."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # noqa: PLC0415

    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", error))
        code = _error_code(error)
        if "AccessDenied" in code or code in ("UnrecognizedClientException", "ExpiredToken"):
            raise TargetUnavailableError(
                f"not allowed to read stack {stack_name!r}: {message} "
                "(needs cloudformation:DescribeStacks)"
            ) from None
        raise LocateError(f"stack {stack_name!r}: {message}") from None
    except NoCredentialsError:
        raise TargetUnavailableError(
            "no AWS credentials: set a profile (--profile) or the usual AWS_* variables"
        ) from None
    except BotoCoreError as error:
        raise TargetUnavailableError(f"cannot read stack {stack_name!r}: {error}") from None
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs") or []}


# ------------------------------------------------------------------ local stages
def local_session(region: str | None) -> Any:
    """A boto3 session for a local stage's endpoints, with the dummy credentials."""
    import boto3  # noqa: PLC0415 - tools that never talk to AWS do not pay for boto3

    return boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=DUMMY_CREDENTIALS["aws_secret_access_key"],
        region_name=region,
    )


@dataclass(frozen=True, slots=True)
class StageInfo:
    """A local stage as it describes itself (LocalStage.describe(), `.local/stage.json`)."""

    source: str  # the state file, or "private stage <stack name>", for messages
    region: str
    stack_name: str
    api_url: str
    invoke_endpoint_url: str
    aws_endpoint_url: str
    api_key: str
    template: Path
    parameters: dict[str, str]
    functions: dict[str, str]  # logical id -> function name
    resources: dict[str, str]  # logical id -> physical id (queue URL, table name, ...)
    schedules: list[str]
    pid: int | None = None
    private: bool = False  # started for this run (not the stage `make local` runs)

    @classmethod
    def from_description(
        cls, info: Mapping[str, Any], source: str, *, private: bool = False
    ) -> StageInfo:
        """Read a stage description; a LocateError names the missing key and where it was read."""
        try:
            pid = info.get("pid")
            return cls(
                source=source,
                region=str(info.get("region") or "us-east-1"),
                stack_name=str(info["stack_name"]),
                api_url=str(info["api_url"]),
                invoke_endpoint_url=str(info["invoke_endpoint_url"]),
                aws_endpoint_url=str(info["aws_endpoint_url"]),
                api_key=str(info["api_key"]),
                template=Path(info.get("template") or TEMPLATE),
                parameters={str(k): str(v) for k, v in (info.get("parameters") or {}).items()},
                functions={str(k): str(v) for k, v in (info.get("functions") or {}).items()},
                resources={str(k): str(v) for k, v in (info.get("resources") or {}).items()},
                schedules=[str(s) for s in info.get("schedules") or []],
                pid=pid if isinstance(pid, int) else None,
                private=private,
            )
        except KeyError as missing:
            key = missing.args[0]
            raise LocateError(f"{source} has no {key!r}: is it a local stage?") from None
        except (AttributeError, TypeError) as error:
            raise LocateError(f"{source} is not a local stage description: {error}") from None

    def function(self, logical_id: str) -> str:
        """The function name of a logical id; a LocateError naming it when the stage has none."""
        if logical_id not in self.functions:
            raise LocateError(
                f"{self.source} names no function {logical_id}: is it a stage of this template?"
            )
        return self.functions[logical_id]

    def resource(self, logical_id: str) -> str:
        """The physical id of a logical id; a LocateError naming it when the stage has none."""
        if logical_id not in self.resources:
            raise LocateError(
                f"{self.source} names no resource {logical_id}: is it a stage of this template?"
            )
        return self.resources[logical_id]

    def session(self) -> Any:
        """A boto3 session in the stage's region with the dummy credentials."""
        return local_session(self.region)

    def which(self) -> str:
        """One line naming this stage for a tool's "using ..." message."""
        pid = f"pid {self.pid}, " if self.pid is not None else ""
        return f"local stage {self.stack_name} at {self.api_url} ({pid}{self.source})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stage(path: Path = STATE_FILE) -> StageInfo | None:
    """The running local stage its state file describes; None when no stage is running.

    A file left by a stage that died without removing it (its pid is gone) means no stage.
    """
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise LocateError(f"cannot read the local stage's state file {path}: {error}") from None
    if not isinstance(info, dict):
        raise LocateError(f"{path} is not a local stage description (not a JSON object)")
    stage = StageInfo.from_description(info, str(path))
    if stage.pid is not None and not _alive(stage.pid):
        return None
    return stage


def state_file_for(api_port: int, directory: Path = STATE_DIR) -> Path:
    """The state file of a stage whose API front listens on `api_port`."""
    if api_port == DEFAULT_API_PORT:
        return directory / STATE_FILE.name
    return directory / f"stage-{api_port}.json"


def live_stages(directory: Path = STATE_DIR) -> list[StageInfo]:
    """Every running stage with a state file in `directory`; files of dead stages are skipped."""
    stages = []
    for path in sorted(directory.glob("stage*.json")):
        try:
            stage = running_stage(path)
        except LocateError:
            continue  # a half-written or foreign file is no stage to pick
        if stage is not None:
            stages.append(stage)
    return stages


def find_stage(state_file: Path | None, directory: Path = STATE_DIR) -> StageInfo | None:
    """The running stage a tool should use; None when none runs.

    A `state_file` names it; without one, the only running stage in `directory`, or among
    several the one on the default ports. Several and none on the default ports: a LocateError
    listing them, so the user names one.
    """
    if state_file is not None:
        return running_stage(state_file)
    stages = live_stages(directory)
    if len(stages) <= 1:
        return stages[0] if stages else None
    default = str(directory / STATE_FILE.name)
    for stage in stages:
        if stage.source == default:
            return stage
    listed = "; ".join(stage.which() for stage in stages)
    raise LocateError(
        f"{len(stages)} local stages are running, name one with --state-file: {listed}"
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def local_stage(
    state_file: Path | None,
    private: Callable[[], StageConfig],
    *,
    sync_reason: str,
    announce: Callable[[], None] | None = None,
    use_running: bool = True,
    say: Callable[[str], None] = _stderr,
) -> Iterator[StageInfo]:
    """The running local stage (`find_stage`), else a private one (`private()` configures it).

    `say` is told which running stage is used, or that a private one starts (`announce`, when
    given, says it instead); `use_running` False always starts the private stage. The private
    stage runs one full sync before it is yielded, so the API reads real data, and stops when
    the block ends.
    """
    running = find_stage(state_file) if use_running else None
    if running is not None:
        say(f"using the {running.which()}")
        yield running
        return
    # The stage is heavy (moto, awslambdaric): imported only when a private one is needed.
    from localstage.stage import LocalStage, StageError  # noqa: PLC0415

    config = private()
    if announce is not None:
        announce()
    else:
        say("no local stage is running: starting a private one on free ports (synced once)")
    with LocalStage(config) as stage:
        try:
            stage.first_sync(sync_reason)
        except StageError as error:
            raise TargetUnavailableError(str(error)) from None
        source = f"private stage {config.stack_name}"
        yield StageInfo.from_description(stage.describe(), source, private=True)
