"""The whole local stage in one object: stand-in, emulator, runtime, fronts and schedules."""

from __future__ import annotations

import json
import logging
import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from localstage.access_log import AccessLog, access_log_setting
from localstage.apigw import start_api_front
from localstage.aws import aws_environment, local_client, prepare_local_stack, start_moto
from localstage.cfn import load_template, local_arn
from localstage.datadog_standin import DatadogStandIn, forwarder_overrides, start_datadog_standin
from localstage.invoke_api import start_invoke_api
from localstage.log_subscriptions import LogPipeline, subscriptions_of
from localstage.ports import probe_port
from localstage.reload import Reloader
from localstage.runtime import LocalRuntime
from localstage.schedules import Scheduler
from localstage.sqs_source import QueueTarget, SqsEventSource, SqsSources, concurrency_of
from localstage.vanta_data import Dataset
from localstage.vanta_standin import DEFAULT_CREDENTIALS, StandIn, start_standin
from localstage.worker import LogLine
from locate import STATE_FILE, TEMPLATE, LocateError, running_stage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from localstage.apigw import ApiFront
    from localstage.runtime import InvokeResult
    from localstage.spec import StackSpec
    from localstage.worker import LogSink

__all__ = ["LocalStage", "PortInUseError", "StageConfig", "StageError"]

logger = logging.getLogger(__name__)

_QUEUE: Final = "AWS::SQS::Queue"
# Parameters every local stage sets: no X-Ray daemon, no Insights extension, no upstream pacing.
LOCAL_OVERRIDES: Final = {
    "EnvironmentName": "local",
    "TracingEnabled": "false",
    "LambdaInsightsEnabled": "false",
    "VantaPagesPerMinute": "0",  # the stand-in has no rate limit unless a test asks for one
}


class StageError(Exception):
    """The local stage could not start; the message says what to change."""


class PortInUseError(StageError):
    """A port the stage needs is taken."""


@dataclass(frozen=True, slots=True)
class StageConfig:
    """Where the stage listens and what it serves. Port 0 picks a free port."""

    template: Path = TEMPLATE
    host: str = "127.0.0.1"
    api_port: int = 3000
    invoke_port: int = 3001
    moto_port: int = 5000
    vanta_port: int = 8030
    stack_name: str = "vulnstats-local"
    region: str = "us-east-1"
    overrides: Mapping[str, str] = field(default_factory=dict)
    dataset: Dataset = field(default_factory=lambda: Dataset(seed=7, now=datetime.now(UTC)))
    state_file: Path | None = STATE_FILE
    idle_timeout_s: float = 600.0
    event_retry_delay_s: float = 1.0
    # Point the functions' own Lambda calls (the warmer's pings, POST /sync, continuations) at
    # the stage's Invoke API instead of the emulator, as they reach Lambda on AWS.
    lambda_via_invoke_api: bool = False
    # Receives every line the functions' workers print (function name, line), as CloudWatch Logs
    # would; None keeps them in the runtime only (the log tail of each invocation).
    log_sink: LogSink | None = None
    # A real Vanta API (or any other upstream) instead of the stand-in, with the credentials the
    # local secret then holds; None starts the stand-in with its own credentials.
    vanta_url: str | None = None
    vanta_credentials: Mapping[str, str] | None = None
    # Watch the functions' code, layers, events and the template (localstage.reload): a saved
    # change retires the affected functions' warm environments. Not for a read-only build.
    reload: bool = False
    # Receives the stage's own one-line notices (reloads); None prints them.
    say: Callable[[str], None] | None = None
    # False for a `sam build` output: its code is read-only on Lambda (/var/task, /opt), so the
    # workers never write bytecode next to it and run only the bytecode the build shipped.
    writable_code: bool = True

    @classmethod
    def ephemeral(cls, **changes: Any) -> StageConfig:
        """A private stage: free loopback ports and no state file, so nothing else finds it.

        `changes` sets any other field (stack_name, dataset, overrides, a state_file, ...).
        """
        private = {"api_port": 0, "invoke_port": 0, "moto_port": 0, "vanta_port": 0}
        return cls(**{**private, "state_file": None, **changes})


def _print(line: str) -> None:
    print(line, flush=True)


def _check_state_file(path: Path) -> None:
    """Refuse a state file that describes another live stage: writing it would hide that stage
    from every tool, and this stage's exit would delete it."""
    try:
        owner = running_stage(path)
    except LocateError:
        return  # unreadable or foreign: no live stage to protect, it is overwritten
    if owner is not None and owner.pid not in (None, os.getpid()):
        raise StageError(
            f"{path} belongs to the running local stage pid {owner.pid} ({owner.api_url}): "
            "stop that stage, or give this one other ports or another --state-file"
        )


def _remove_own_state(path: Path) -> None:
    """Delete the state file only while it still describes this process's stage."""
    try:
        owner = running_stage(path)
    except LocateError:
        return
    if owner is not None and owner.pid == os.getpid():
        path.unlink(missing_ok=True)


def _check_port(host: str, port: int, what: str, flag: str) -> None:
    if port == 0:
        return
    try:
        probe_port(host, port)
    except OSError:
        raise PortInUseError(
            f"port {port} on {host} ({what}) is already in use: stop whatever holds it "
            f"(a local stage already running?) or choose another with {flag}"
        ) from None


class LocalStage:
    """Starts every part on loopback, in dependency order, and stops them in reverse."""

    def __init__(self, config: StageConfig | None = None) -> None:
        self.config = config or StageConfig()
        self.api_key = "local-" + secrets.token_urlsafe(24)
        self._stack = ExitStack()
        self.stack: StackSpec | None = None
        self.physical_ids: dict[str, str] = {}
        self.runtime: LocalRuntime | None = None
        self.standin: StandIn | None = None
        self.scheduler: Scheduler | None = None
        self.sqs_sources: SqsSources | None = None
        # With MetricsForwarder=datadog: the loopback Datadog intake the forwarder posts to.
        self.datadog: DatadogStandIn | None = None
        # EMF lines to CloudWatch metrics and log subscriptions, as CloudWatch Logs does.
        self.logs: LogPipeline | None = None
        self.urls: dict[str, str] = {}

    def __enter__(self) -> LocalStage:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the stand-in, moto, the resources, the runtime and both HTTP fronts."""
        cfg = self.config
        ports = [
            (cfg.api_port, "API Gateway front", "--api-port"),
            (cfg.invoke_port, "Lambda Invoke API", "--invoke-port"),
            (cfg.moto_port, "AWS emulator", "--moto-port"),
        ]
        if cfg.vanta_url is None:
            ports.append((cfg.vanta_port, "Vanta stand-in", "--vanta-port"))
        for port, what, flag in ports:
            _check_port(cfg.host, port, what, flag)
        if cfg.state_file is not None:
            _check_state_file(cfg.state_file)
        try:
            self._start(cfg)
        except BaseException:
            self.stop()
            raise

    def _start(self, cfg: StageConfig) -> None:
        if cfg.vanta_url is None:
            standin = start_standin(cfg.host, cfg.vanta_port, dataset=cfg.dataset)
            self._stack.callback(standin.stop)
            self.standin = standin
            vanta_url = standin.url
            upstream = LOCAL_OVERRIDES
            credentials = {
                "client_id": DEFAULT_CREDENTIALS.client_id,
                "client_secret": DEFAULT_CREDENTIALS.client_secret,
            }
        else:
            # A real upstream keeps the template's pacing: its rate limits are real.
            vanta_url = cfg.vanta_url
            upstream = {k: v for k, v in LOCAL_OVERRIDES.items() if k != "VantaPagesPerMinute"}
            credentials = dict(cfg.vanta_credentials or {})
        moto = start_moto(cfg.host, cfg.moto_port)
        self._stack.callback(moto.stop)
        overrides = {**upstream, "VantaApiBaseUrl": vanta_url, **cfg.overrides}
        if overrides.get("MetricsForwarder") == "datadog":
            overrides.update(self._start_datadog(cfg, moto.endpoint_url))
        stack, physical = prepare_local_stack(
            cfg.template,
            moto.endpoint_url,
            vanta_credentials=credentials,
            overrides=overrides,
            stack_name=cfg.stack_name,
            region=cfg.region,
        )
        self.stack, self.physical_ids = stack, physical
        for warning in stack.warnings:
            logger.warning("template: %s", warning)
        logs = LogPipeline(
            downstream=cfg.log_sink,
            cloudwatch=local_client("cloudwatch", moto.endpoint_url, cfg.region),
        )
        self.logs = logs
        runtime = LocalRuntime(
            stack.functions,
            base_env=aws_environment(moto.endpoint_url, cfg.region),
            idle_timeout_s=cfg.idle_timeout_s,
            host=cfg.host,
            sqs_endpoint_url=moto.endpoint_url,
            dlq_urls={
                q.logical_id: physical[q.logical_id] for q in stack.resources_of_type(_QUEUE)
            },
            region=cfg.region,
            account_id=stack.account_id,
            event_retry_delay_s=cfg.event_retry_delay_s,
            log_sink=logs,
            write_bytecode=cfg.writable_code,
        )
        self._stack.callback(runtime.shutdown)
        self.runtime = runtime
        self._wire_log_subscriptions(logs, runtime, stack)
        if cfg.reload and cfg.writable_code:
            reloader = Reloader(
                runtime,
                stack.functions,
                template=cfg.template.resolve(),
                events_dir=cfg.template.resolve().parent / "events",
                say=cfg.say or _print,
                root=cfg.template.resolve().parent,
            )
            reloader.start()
            self._stack.callback(reloader.stop)
        invoke_api = start_invoke_api(runtime, cfg.host, cfg.invoke_port)
        self._stack.callback(invoke_api.close)
        if cfg.lambda_via_invoke_api:
            runtime.add_base_environment({"AWS_ENDPOINT_URL_LAMBDA": invoke_api.endpoint_url})
        names = {spec.logical_id: spec.function_name for spec in stack.functions.values()}
        routes = [route for spec in stack.functions.values() for route in spec.routes]
        front = start_api_front(
            routes,
            runtime,
            function_names=names,
            api_keys=[self.api_key],
            host=cfg.host,
            port=cfg.api_port,
            iam_mode=stack.parameters.get("ApiAuthType") == "IAM",
        )
        self._stack.callback(front.close)
        self._wire_access_log(front)
        schedules = [s for spec in stack.functions.values() for s in spec.schedules]
        queues = local_client("sqs", moto.endpoint_url, cfg.region)

        def send_to_queue(queue: str, body: bytes) -> str:
            answer = queues.send_message(QueueUrl=physical[queue], MessageBody=body.decode())
            return str(answer["MessageId"])

        self.scheduler = Scheduler(
            schedules,
            runtime,
            function_names=names,
            stack_name=stack.stack_name,
            send_to_queue=send_to_queue,
        )
        self._stack.callback(self.scheduler.stop)
        self.sqs_sources = self._start_sqs_sources(stack, physical, runtime, moto.endpoint_url)
        self.urls = {
            "api": front.url,
            "invoke": invoke_api.endpoint_url,
            "aws": moto.endpoint_url,
            "vanta": vanta_url,
        }
        self._write_state()

    def _start_sqs_sources(
        self, stack: StackSpec, physical: Mapping[str, str], runtime: LocalRuntime, endpoint: str
    ) -> SqsSources:
        """Poll every SQS event of the template's functions, as Lambda's event sources do."""
        region = self.config.region

        def client() -> Any:
            return local_client("sqs", endpoint, region)

        sources = [
            SqsEventSource(
                source,
                runtime,
                QueueTarget(
                    url=physical[source.queue],
                    arn=local_arn(
                        _QUEUE,
                        stack.resources[source.queue].physical_name,
                        region=region,
                        account_id=stack.account_id,
                    ),
                    region=region,
                ),
                sqs_client=client,
                concurrency=concurrency_of(source, spec.reserved_concurrency),
            )
            for spec in stack.functions.values()
            for source in spec.sqs_sources
        ]
        pollers = SqsSources(sources)
        pollers.start()
        self._stack.callback(pollers.stop)
        return pollers

    def _start_datadog(self, cfg: StageConfig, endpoint_url: str) -> dict[str, str]:
        """Start the Datadog stand-in; the parameters that point the forwarder at it."""
        api_key = "local-dd-" + secrets.token_hex(16)
        self.datadog = start_datadog_standin(api_key, cfg.host)
        self._stack.callback(self.datadog.stop)
        client = local_client("secretsmanager", endpoint_url, cfg.region)
        return forwarder_overrides(self.datadog, api_key, client, stack_name=cfg.stack_name)

    def _wire_log_subscriptions(
        self, logs: LogPipeline, runtime: LocalRuntime, stack: StackSpec
    ) -> None:
        """Deliver subscribed log groups' EMF lines to their destination, asynchronously."""
        subscribed, destination = subscriptions_of(load_template(self.config.template), stack)
        if destination is not None:
            logs.subscriptions = subscribed
            logs.deliver = lambda event: runtime.invoke_async(
                destination, json.dumps(event).encode()
            )
        logs.start()
        self._stack.callback(logs.stop)

    def _wire_access_log(self, front: ApiFront) -> None:
        """The API's access log lines go to the log sink under the API's logical id."""
        sink = self.config.log_sink
        setting = access_log_setting(load_template(self.config.template))
        if sink is None or setting is None:
            return
        api_id, log_format = setting

        def resource_of(method: str, path: str) -> str | None:
            matched = front.routes.match(method, path)
            return None if matched is None else matched.route.path

        front.access_log = AccessLog(
            log_format,
            resource_of=resource_of,
            sink=lambda line: sink(LogLine(api_id, line, api_id, access=True)),
        )

    def _write_state(self) -> None:
        path = self.config.state_file
        if path is None or self.stack is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.describe()
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, path)  # readers never see half a file
        self._stack.callback(_remove_own_state, path)

    def describe(self) -> dict[str, Any]:
        """What scripts and tests need to find the stage (also written to .local/stage.json)."""
        if self.stack is None:
            raise StageError("the stage is not running")
        return {
            "pid": os.getpid(),
            "region": self.config.region,
            "stack_name": self.stack.stack_name,
            "api_url": self.urls["api"],
            "invoke_endpoint_url": self.urls["invoke"],
            "aws_endpoint_url": self.urls["aws"],
            "vanta_url": self.urls["vanta"],
            "api_key": self.api_key,
            "template": str(self.config.template),
            "parameters": dict(sorted(self.stack.parameters.items())),
            "functions": {
                lid: spec.function_name for lid, spec in sorted(self.stack.functions.items())
            },
            "resources": dict(sorted(self.physical_ids.items())),
            "schedules": sorted(
                f"{s.function}.{s.name}"
                for spec in self.stack.functions.values()
                for s in spec.schedules
            ),
        }

    def invoke(self, logical_id: str, event: Mapping[str, Any]) -> InvokeResult:
        """Invoke a function synchronously with a JSON event, as `sam local invoke` does."""
        if self.runtime is None:
            raise StageError("the stage is not running")
        return self.runtime.invoke(logical_id, json.dumps(event).encode(), log_tail=True)

    def first_sync(self, reason: str) -> None:
        """Run one full sync so the API reads real data; a StageError when it fails."""
        # The layer's contract builds the event; imported here, as only a first sync needs it.
        from vulnstats.triggers import manual_event  # noqa: PLC0415

        result = self.invoke("SyncFunction", manual_event(reason))
        if result.function_error:
            raise StageError(
                f"the first sync of {self.config.stack_name} failed: {result.payload[:300]!r}"
            )

    def stop(self) -> None:
        """Stop everything that was started, newest first; safe to call twice."""
        self._stack.close()
        self.runtime = None
