"""`python -m localstage up|invoke|fire`: the local stage, `sam local invoke`, schedules."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from buildtools.compile_bytecode import BytecodeError, check_folder, code_folders
from localstage.aws import AwsEmulatorError
from localstage.cfn import TemplateError
from localstage.schedules import ScheduleError, Scheduler
from localstage.stage import LocalStage, StageConfig, StageError
from localstage.template import load_stack
from localstage.vanta_data import Dataset
from localstage.vanta_standin import StandInError
from locate import STATE_FILE, TEMPLATE, LocateError, StageInfo, running_stage
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from localstage.runtime import InvokeResult

FIRST_SYNC_EVENT = manual_event("first sync of make local")


def _print_banner(stage: LocalStage) -> None:
    info = stage.describe()
    api, key = info["api_url"], info["api_key"]
    lines = [
        "",
        "Local stage is up (loopback only). Ctrl-C stops every process it started.",
        f"  API Gateway front  {api}",
        f"  Lambda Invoke API  {info['invoke_endpoint_url']}",
        f"  AWS emulator       {info['aws_endpoint_url']} (moto; dummy credentials)",
        f"  Vanta stand-in     {info['vanta_url']} (development fixture, generated data)",
        f"  API key            {key}",
        f"  functions          {', '.join(info['functions'].values())}",
        f"  code               {_code_origin(stage)}",
        f"  state file         {stage.config.state_file}",
        "",
        "Try:",
        f"  curl -s {api}/health",
        f"  curl -s -H 'x-api-key: {key}' {api}/stats",
        f"  curl -s -H 'x-api-key: {key}' '{api}/vulnerabilities?severity=CRITICAL&limit=5'",
        f"  aws lambda invoke --endpoint-url {info['invoke_endpoint_url']} "
        "--function-name ApiFunction --payload fileb://events/api_get_health.json out.json",
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
    config = StageConfig(
        template=_built_template(args.build_dir) if built else TEMPLATE,
        writable_code=not built,
        api_port=args.api_port,
        invoke_port=args.invoke_port,
        moto_port=args.moto_port,
        vanta_port=args.vanta_port,
        state_file=Path(args.state_file),
        lambda_via_invoke_api=True,
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
    print("local stage stopped", flush=True)
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


def _invoke(args: argparse.Namespace) -> int:
    event = json.loads(Path(args.event).read_text())
    info = running_stage(Path(args.state_file))
    if info is not None:
        # A stage is running: invoke through its Invoke API, exactly as boto3 users do.
        answer = _lambda_client(info).invoke(
            FunctionName=args.function, Payload=json.dumps(event), LogType="Tail"
        )
        log = base64.b64decode(answer.get("LogResult", "")).decode(errors="replace")
        print(log, file=sys.stderr)
        print(answer["Payload"].read().decode())
        return 1 if answer.get("FunctionError") else 0
    # No stage running: start a private one on free ports for this one invocation.
    config = StageConfig.ephemeral()
    with LocalStage(config) as stage:
        result = stage.invoke(args.function, event)
    print((result.log_tail or b"").decode(errors="replace"), file=sys.stderr)
    print(result.payload.decode(errors="replace"))
    return 1 if result.function_error else 0


def _fire(args: argparse.Namespace) -> int:
    info = running_stage(Path(args.state_file))
    if info is None:
        raise StageError(
            f"no local stage is running (no live stage in {args.state_file}): run make local"
        )
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
        raise StageError(f"{exc} (schedules of this stack: {known})") from None
    for request_id in request_ids:
        print(f"fired {args.schedule}: request {request_id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run `up` or `invoke`."""
    parser = argparse.ArgumentParser(prog="python -m localstage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local stage and serve until Ctrl-C")
    up.add_argument("--api-port", type=int, default=3000)
    up.add_argument("--invoke-port", type=int, default=3001)
    up.add_argument("--moto-port", type=int, default=5000)
    up.add_argument("--vanta-port", type=int, default=8030)
    up.add_argument("--seed", type=int, default=7, help="seed of the stand-in's generated data")
    up.add_argument("--vulnerabilities", type=int, default=2000, help="findings to generate")
    up.add_argument("--state-file", default=str(STATE_FILE), help="where addresses go")
    up.add_argument("--no-first-sync", dest="first_sync", action="store_false")
    up.add_argument(
        "--build-dir",
        type=Path,
        help="run a `sam build` output (make build) instead of the source tree, as Lambda would",
    )
    up.add_argument(
        "--compress-schedules", type=float, default=0.0, help="fire schedules N times faster"
    )
    invoke = commands.add_parser("invoke", help="Docker-free `sam local invoke`")
    invoke.add_argument("function", help="logical id, e.g. ApiFunction")
    invoke.add_argument("event", help="JSON event file, e.g. events/api_get_health.json")
    fire = commands.add_parser("fire", help="fire a template schedule now on the running stage")
    fire.add_argument("schedule", help="Function.Event, an event name, or a function's logical id")
    for command in (invoke, fire):
        command.add_argument("--state-file", default=str(STATE_FILE), help="the running stage")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        handlers = {"up": _up, "invoke": _invoke, "fire": _fire}
        return handlers[args.command](args)
    except (StageError, TemplateError, AwsEmulatorError, StandInError, LocateError) as exc:
        print(f"local stage: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
