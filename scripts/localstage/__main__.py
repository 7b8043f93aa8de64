"""`python -m localstage up|invoke|fire`: the local stage, `sam local invoke`, schedules."""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from buildtools.compile_bytecode import BytecodeError, check_folder, code_folders
from localstage.aws import AwsEmulatorError
from localstage.cfn import TemplateError, load_template
from localstage.console import Console
from localstage.intrinsics import check_overrides
from localstage.schedules import ScheduleError, Scheduler
from localstage.stage import LocalStage, StageConfig, StageError
from localstage.template import load_stack
from localstage.vanta_data import Dataset
from localstage.vanta_standin import StandInError
from locate import (
    DEFAULT_API_PORT,
    DUMMY_CREDENTIALS,
    REPO,
    TEMPLATE,
    LocateError,
    StageInfo,
    find_stage,
    state_file_for,
)
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from localstage.runtime import InvokeResult

FIRST_SYNC_EVENT = manual_event("first sync of make local")
EVENTS = REPO / "events"
# Parameters the stage sets itself: the secret it creates, the upstream --vanta-url chooses.
_STAGE_PARAMETERS = {"VantaSecretArn": "the stage creates it", "VantaApiBaseUrl": "use --vanta-url"}
_FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


class UsageError(Exception):
    """A command-line mistake: one line naming it and the valid choices, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 picks a free one)")
    return port


def _at_least(minimum: float, kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _override_pairs(tokens: Sequence[str]) -> dict[str, str]:
    """SAM's --parameter-overrides: `Key=Value` or `ParameterKey=Key,ParameterValue=Value`."""
    overrides: dict[str, str] = {}
    for token in tokens:
        if token.startswith("ParameterKey="):
            key_part, comma, value_part = token.partition(",")
            key = key_part.removeprefix("ParameterKey=")
            if not comma or not value_part.startswith("ParameterValue="):
                raise UsageError(
                    f"--parameter-overrides {token!r}: expected "
                    "ParameterKey=Name,ParameterValue=Value or Name=Value"
                )
            value = value_part.removeprefix("ParameterValue=")
        else:
            key, equals, value = token.partition("=")
            if not equals or not key:
                raise UsageError(f"--parameter-overrides {token!r}: expected Name=Value")
        if key in _STAGE_PARAMETERS:
            raise UsageError(
                f"--parameter-overrides {key}: set by the local stage ({_STAGE_PARAMETERS[key]})"
            )
        overrides[key] = value
    return overrides


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _vanta_upstream(args: argparse.Namespace) -> tuple[str | None, dict[str, str] | None]:
    """The --vanta-url and its credentials (a file, else VANTA_CLIENT_ID/_SECRET), checked."""
    if args.vanta_url is None:
        if args.vanta_credentials is not None:
            raise UsageError("--vanta-credentials needs --vanta-url (the stand-in has its own)")
        return None, None
    url = args.vanta_url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
        raise UsageError(
            f"--vanta-url {args.vanta_url}: must be https (plain http only to 127.0.0.1 or "
            "localhost), e.g. https://api.vanta.com"
        )
    if args.vanta_credentials is not None:
        try:
            document = json.loads(Path(args.vanta_credentials).read_text())
        except OSError as exc:
            raise UsageError(
                f"--vanta-credentials: cannot read {args.vanta_credentials}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise UsageError(
                f"--vanta-credentials {args.vanta_credentials}: not JSON ({exc})"
            ) from None
        found = document if isinstance(document, dict) else {}
        where = str(args.vanta_credentials)
        client_id, secret = found.get("client_id"), found.get("client_secret")
    else:
        where = "the environment (VANTA_CLIENT_ID, VANTA_CLIENT_SECRET)"
        client_id, secret = os.environ.get("VANTA_CLIENT_ID"), os.environ.get("VANTA_CLIENT_SECRET")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise UsageError(
            f"--vanta-url needs a client_id and client_secret: none in {where} (set "
            "VANTA_CLIENT_ID and VANTA_CLIENT_SECRET, or --vanta-credentials FILE with "
            '{"client_id": ..., "client_secret": ...})'
        )
    return url, {"client_id": client_id, "client_secret": secret}


def _print_banner(stage: LocalStage) -> None:
    info = stage.describe()
    api, key = info["api_url"], info["api_key"]
    # The aws CLI needs a region and some credentials even for a local endpoint: the example
    # carries both (the dummy ones) so it works as printed on a fresh shell, from any folder.
    aws_env = (
        f"AWS_DEFAULT_REGION={info['region']} "
        f"AWS_ACCESS_KEY_ID={DUMMY_CREDENTIALS['aws_access_key_id']} "
        f"AWS_SECRET_ACCESS_KEY={DUMMY_CREDENTIALS['aws_secret_access_key']}"
    )
    out = REPO / ".local" / "out.json"
    out.parent.mkdir(exist_ok=True)  # the example writes there; a fresh clone has no .local/
    if stage.standin is not None:
        vanta = f"  Vanta stand-in     {info['vanta_url']} (development fixture, generated data)"
    else:
        vanta = f"  Vanta API          {info['vanta_url']} (real upstream: its rate limits apply)"
    lines = [
        "",
        "Local stage is up (loopback only). Ctrl-C stops every process it started.",
        f"  API Gateway front  {api}",
        f"  Lambda Invoke API  {info['invoke_endpoint_url']}",
        f"  AWS emulator       {info['aws_endpoint_url']} (moto; dummy credentials)",
        vanta,
        f"  API key            {key}",
        f"  functions          {', '.join(info['functions'].values())}",
        f"  code               {_code_origin(stage)}",
        f"  state file         {stage.config.state_file}",
        "",
        "Try:",
        f"  curl -s {api}/health",
        f"  curl -s -H 'x-api-key: {key}' {api}/stats",
        f"  curl -s -H 'x-api-key: {key}' '{api}/vulnerabilities?severity=CRITICAL&limit=5'",
        f"  {aws_env} aws lambda invoke --endpoint-url {info['invoke_endpoint_url']} "
        f"--function-name ApiFunction --payload fileb://{EVENTS / 'api_get_health.json'} "
        f"{out} && cat {out}",
        "",
    ]
    print("\n".join(lines), flush=True)


def _code_origin(stage: LocalStage) -> str:
    if stage.config.writable_code:
        return "the source tree"
    return f"{stage.config.template.parent} (read-only, its shipped bytecode only)"


def _report(result: InvokeResult) -> dict[str, Any]:
    try:
        payload: Any = json.loads(result.payload or b"null")
    except ValueError:
        payload = result.payload.decode(errors="replace")
    return {"error": result.function_error, "payload": payload, "report": result.report.render()}


def _built_template(build_dir: Path) -> Path:
    """The template of a `sam build` output whose bytecode Lambda would use as it is."""
    try:
        checks = [check_folder(folder) for folder in code_folders(build_dir)]
    except BytecodeError as exc:
        raise StageError(str(exc)) from None
    stale = sum(len(check.missing) + len(check.invalid) for check in checks)
    if stale:
        raise StageError(
            f"{build_dir}: {stale} modules have no valid unchecked-hash bytecode; "
            "run `make build` (sam build, then scripts/buildtools/compile_bytecode.py)"
        )
    return build_dir / "template.yaml"


def _up(args: argparse.Namespace) -> int:
    built = args.build_dir is not None
    template = _built_template(args.build_dir) if built else TEMPLATE
    overrides = _override_pairs(args.parameter_overrides)
    try:
        check_overrides(template, overrides)  # before anything starts
    except TemplateError as exc:
        raise UsageError(f"--parameter-overrides: {exc}") from None
    vanta_url, vanta_credentials = _vanta_upstream(args)
    for function in args.logs:
        _check_function(function, _template_functions(template))
    state_file = args.state_file or state_file_for(args.api_port)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log_file = state_file.with_suffix(".log")
    log_file.unlink(missing_ok=True)  # `logs` follows this run's lines only
    console = Console(sys.stdout, quiet=args.quiet, functions=args.logs, log_file=log_file)
    config = StageConfig(
        template=template,
        writable_code=not built,
        api_port=args.api_port,
        invoke_port=args.invoke_port,
        moto_port=args.moto_port,
        vanta_port=args.vanta_port,
        state_file=state_file,
        overrides=overrides,
        vanta_url=vanta_url,
        vanta_credentials=vanta_credentials,
        lambda_via_invoke_api=True,
        log_sink=console,
        reload=args.reload and not built,
        dataset=Dataset(
            seed=args.seed, vulnerability_count=args.vulnerabilities, now=datetime.now(UTC)
        ),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with LocalStage(config) as stage:
        _print_banner(stage)
        if args.first_sync:
            outcome = _report(stage.invoke("SyncFunction", FIRST_SYNC_EVENT))
            print(f"first sync: {json.dumps(outcome['payload'])}", flush=True)
            if outcome["error"]:
                print("first sync failed; the stage keeps serving", file=sys.stderr)
        else:
            print("first sync: skipped (--no-first-sync)", flush=True)
        if args.compress_schedules and stage.scheduler is not None:
            stage.scheduler.run_compressed(args.compress_schedules)
            print(f"schedules run {args.compress_schedules}x faster than the template says")
        stop.wait()
    console.close()
    print("local stage stopped", flush=True)
    return 0


def _logs(args: argparse.Namespace) -> int:
    info = find_stage(args.state_file)
    if info is None:
        where = args.state_file or "none in .local/"
        raise StageError(f"no local stage is running ({where}): start one with make local")
    if args.function is not None:
        _check_function(args.function, sorted(info.functions))
    log_file = Path(info.source).with_suffix(".log")
    _say(f"following {args.function or 'every function'} of the {info.which()} (Ctrl-C stops)")
    prefix = f"[{args.function} " if args.function else "["
    try:
        with log_file.open(encoding="utf-8") as log:
            while True:
                line = log.readline()
                if line:
                    if line.startswith(prefix):
                        print(line, end="", flush=True)
                    continue
                if find_stage(Path(info.source)) is None:
                    _say("the stage stopped")
                    return 0
                threading.Event().wait(0.2)
    except FileNotFoundError:
        raise StageError(f"{log_file} is absent: the stage writes no log file") from None
    except KeyboardInterrupt:
        return 0


def _lambda_client(info: StageInfo) -> Any:
    return info.session().client(
        "lambda",
        endpoint_url=info.invoke_endpoint_url,
        config=Config(read_timeout=960, retries={"mode": "standard", "max_attempts": 1}),
    )


class _InvokeApiInvoker:
    """The scheduler's AsyncInvoker over a running stage's Invoke API (Event invocations)."""

    def __init__(self, info: StageInfo, account_id: str) -> None:
        self._client = _lambda_client(info)
        self.region: str = info.region
        self.account_id = account_id

    def invoke_async(self, name: str, payload: bytes, *, qualifier: str | None = None) -> str:
        extra = {"Qualifier": qualifier} if qualifier else {}
        answer = self._client.invoke(
            FunctionName=name, InvocationType="Event", Payload=payload, **extra
        )
        return str(answer["ResponseMetadata"]["RequestId"])


def _read_event(path: Path) -> Any:
    """The JSON event of a file; a UsageError naming the file and what is wrong with it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        examples = ", ".join(sorted(f"events/{p.name}" for p in EVENTS.glob("*.json")))
        raise UsageError(f"event file {path} does not exist (examples: {examples})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"event file {path}: cannot read it ({exc})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"event file {path} is not valid JSON: {exc}") from None


def _template_functions(template: Path) -> list[str]:
    resources = load_template(template)["Resources"]
    return sorted(
        name
        for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") in _FUNCTION_TYPES
    )


def _check_function(name: str, logical_ids: Sequence[str], names: Sequence[str] = ()) -> None:
    if name not in logical_ids and name not in names:
        raise UsageError(f"unknown function {name} (functions: {', '.join(logical_ids)})")


def _say(line: str) -> None:
    print(f"local stage: {line}", file=sys.stderr, flush=True)


def _invoke(args: argparse.Namespace) -> int:
    event = _read_event(Path(args.event))
    info = find_stage(args.state_file)
    if info is not None:
        # A stage is running: invoke through its Invoke API, exactly as boto3 users do.
        _check_function(args.function, sorted(info.functions), list(info.functions.values()))
        _say(f"using the {info.which()}")
        try:
            answer = _lambda_client(info).invoke(
                FunctionName=args.function, Payload=json.dumps(event), LogType="Tail"
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StageError(f"{error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise StageError(f"the {info.which()} did not answer: {exc}") from None
        log = base64.b64decode(answer.get("LogResult", "")).decode(errors="replace")
        print(log, file=sys.stderr)
        print(answer["Payload"].read().decode())
        return 1 if answer.get("FunctionError") else 0
    _check_function(args.function, _template_functions(TEMPLATE))
    _say(
        "no local stage is running (make local starts one): this invocation runs on a private "
        "stage on free ports, with no data synced, stopped afterwards"
    )
    with LocalStage(StageConfig.ephemeral()) as stage:
        result = stage.invoke(args.function, event)
    print((result.log_tail or b"").decode(errors="replace"), file=sys.stderr)
    print(result.payload.decode(errors="replace"))
    return 1 if result.function_error else 0


def _fire(args: argparse.Namespace) -> int:
    info = find_stage(args.state_file)
    if info is None:
        where = args.state_file or "none in .local/"
        raise StageError(f"no local stage is running ({where}): start one with make local")
    _say(f"using the {info.which()}")
    stack = load_stack(info.template, overrides=info.parameters)
    schedules = [s for spec in stack.functions.values() for s in spec.schedules]
    queues = info.session().client("sqs", endpoint_url=info.aws_endpoint_url)

    def send_to_queue(queue: str, body: bytes) -> str:
        answer = queues.send_message(QueueUrl=info.resource(queue), MessageBody=body.decode())
        return str(answer["MessageId"])

    scheduler = Scheduler(
        schedules,
        _InvokeApiInvoker(info, stack.account_id),
        function_names=dict(info.functions),
        stack_name=info.stack_name,
        send_to_queue=send_to_queue,
    )
    try:
        request_ids = scheduler.fire(args.schedule)
    except ScheduleError as exc:
        known = ", ".join(info.schedules) or "none"
        raise UsageError(f"{exc} (schedules of this stack: {known})") from None
    for request_id in request_ids:
        print(f"fired {args.schedule}: request {request_id}")
    return 0


def _up_parser(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="start the local stage and serve until Ctrl-C",
        description="Start the local stage on loopback and serve until Ctrl-C.",
    )
    ports = up.add_argument_group("ports (127.0.0.1; 0 picks a free one)")
    ports.add_argument("--api-port", type=_port, default=DEFAULT_API_PORT, help="API Gateway front")
    ports.add_argument("--invoke-port", type=_port, default=3001, help="Lambda Invoke API")
    ports.add_argument("--moto-port", type=_port, default=5000, help="AWS emulator (moto)")
    ports.add_argument("--vanta-port", type=_port, default=8030, help="Vanta stand-in")
    up.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="Key=Value",
        help="template parameters, as sam deploy takes them (Key=Value or "
        "ParameterKey=Key,ParameterValue=Value), checked against template.yaml's Parameters, "
        "e.g. LogLevel=DEBUG WarmingStrategy=none",
    )
    up.add_argument(
        "--vanta-url",
        metavar="URL",
        help="a real Vanta API instead of the stand-in (https; http only on loopback), e.g. "
        "https://api.vanta.com; credentials from VANTA_CLIENT_ID and VANTA_CLIENT_SECRET or "
        "--vanta-credentials. Its rate limits are real: the sync paces itself "
        "(VantaPagesPerMinute)",
    )
    up.add_argument(
        "--vanta-credentials",
        type=Path,
        metavar="FILE",
        help='JSON file {"client_id": ..., "client_secret": ...} for --vanta-url',
    )
    up.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not watch functions/, layers/ and events/ (by default a saved change retires "
        "the affected functions' warm environments, so the next invocation runs the new code)",
    )
    up.add_argument(
        "--quiet",
        action="store_true",
        help="print only the API access lines, not the functions' logs (they still go to the "
        "log file `make logs-local` follows)",
    )
    up.add_argument(
        "--logs",
        action="append",
        default=[],
        metavar="FUNCTION",
        help="print the logs of this function only (a logical id, e.g. ApiFunction; repeatable)",
    )
    up.add_argument(
        "--seed", type=int, default=7, help="seed of the stand-in's generated data (default 7)"
    )
    up.add_argument(
        "--vulnerabilities",
        type=_at_least(0, int),
        default=2000,
        help="findings the stand-in generates (default 2000)",
    )
    up.add_argument(
        "--state-file",
        type=Path,
        help="where the stage writes its addresses for the other tools (default "
        ".local/stage.json on the default API port, else .local/stage-<api port>.json)",
    )
    up.add_argument(
        "--no-first-sync",
        dest="first_sync",
        action="store_false",
        help="serve without running one sync first (the API then has no data)",
    )
    up.add_argument(
        "--build-dir",
        type=Path,
        help="run a `sam build` output (make build) instead of the source tree, as Lambda would",
    )
    up.add_argument(
        "--compress-schedules",
        type=_at_least(0, float),
        default=0.0,
        metavar="N",
        help="fire the template's schedules N times faster than they say (default: as written)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m localstage`: up, invoke and fire."""
    parser = _Parser(prog="python -m localstage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{up,invoke,fire,logs}")
    _up_parser(commands)
    invoke = commands.add_parser("invoke", help="Docker-free `sam local invoke`")
    invoke.add_argument("function", help="logical id, e.g. ApiFunction")
    invoke.add_argument("event", help="JSON event file, e.g. events/api_get_health.json")
    fire = commands.add_parser("fire", help="fire a template schedule now on the running stage")
    fire.add_argument("schedule", help="Function.Event, an event name, or a function's logical id")
    logs = commands.add_parser("logs", help="follow the function logs of a running stage")
    logs.add_argument(
        "function", nargs="?", help="a logical id, e.g. ApiFunction (default: every function)"
    )
    for command in (invoke, fire, logs):
        command.add_argument(
            "--state-file",
            type=Path,
            help="a running stage's state file (default: the only stage running, or the one "
            "on the default ports)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run `up`, `invoke` or `fire`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        handlers = {"up": _up, "invoke": _invoke, "fire": _fire, "logs": _logs}
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return 2
    except (StageError, TemplateError, AwsEmulatorError, StandInError, LocateError) as exc:
        print(f"local stage: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
