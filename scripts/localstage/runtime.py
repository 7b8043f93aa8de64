"""Local Lambda runtime: pools of awslambdaric workers (localstage.worker), each behind its own
loopback Runtime API (localstage.runtime_api); synchronous and asynchronous invocations, retries,
throttling and dead-lettering as Lambda does them."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localstage.report_line import ReportLine
from localstage.runtime_api import EXECUTED_VERSION
from localstage.worker import Invocation, LocalRuntimeError, LogSink, Outcome, Worker

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from localstage.spec import FunctionSpec

__all__ = [
    "FunctionNotFoundError",
    "InvalidRequestContentError",
    "InvokeResult",
    "LocalRuntime",
    "LocalRuntimeError",
    "ThrottledError",
    "parse_function_name",
]

logger = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4096
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
_THROTTLE_RETRY_FLOOR_S = 0.05  # a throttled event waits at least this long before trying again


class FunctionNotFoundError(LocalRuntimeError):
    """No function of the stack answers to this name (Lambda's ResourceNotFoundException)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Function not found: {name}")
        self.name = name


class ThrottledError(LocalRuntimeError):
    """No execution environment is free within the concurrency limits (TooManyRequestsException)."""

    def __init__(self, reason: str) -> None:
        super().__init__("Rate Exceeded.")
        self.reason = reason


class InvalidRequestContentError(LocalRuntimeError):
    """The payload is not JSON (Lambda's InvalidRequestContentException)."""


def parse_function_name(name: str) -> tuple[str, str | None]:
    """Split a bare name, ``name:qualifier``, partial or full ARN into (name, qualifier)."""
    rest = name.rsplit(":function:", 1)[-1]
    bare, _, qualifier = rest.partition(":")
    return bare, (qualifier or None)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """What a synchronous invocation answers."""

    request_id: str
    status: int
    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed
    log_tail: bytes | None  # last 4 KB of the invocation's log, when asked for
    report: ReportLine
    cold: bool
    executed_version: str = EXECUTED_VERSION
    error_type: str | None = None

    @property
    def log_result(self) -> str | None:
        """The log tail base64-encoded, as in X-Amz-Log-Result."""
        return None if self.log_tail is None else base64.b64encode(self.log_tail).decode()


class _Pool:
    """The execution environments of one function."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.idle: list[Worker] = []  # most recently used last
        self.live: set[Worker] = set()  # every worker not yet stopped, idle or busy
        self.busy = 0
        self.generation = 0


class LocalRuntime:
    """Runs the stack's functions in awslambdaric worker processes (Lambda's environments)."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        base_env: Mapping[str, str],
        idle_timeout_s: float = 600.0,
        host: str = "127.0.0.1",
        sqs_endpoint_url: str | None = None,
        dlq_urls: Mapping[str, str] | None = None,
        region: str | None = None,
        account_id: str = "123456789012",
        account_concurrency: int = 1000,
        init_timeout_s: float = 10.0,
        event_retry_delay_s: float = 0.5,
        max_event_age_s: float = 300.0,
        async_workers: int = 8,
        log_sink: LogSink | None = None,
        write_bytecode: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools = {spec.logical_id: _Pool(spec) for spec in functions.values()}
        self._names: dict[str, str] = {}
        for logical_id, pool in self._pools.items():
            self._names[pool.spec.function_name] = logical_id
            self._names[logical_id] = logical_id
        self._base_env = dict(base_env)
        self._idle_timeout_s = idle_timeout_s
        self._host = host
        self._sqs_endpoint_url = sqs_endpoint_url
        self._dlq_urls = dict(dlq_urls or {})
        self.region = (
            region
            or self._base_env.get("AWS_REGION")
            or self._base_env.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self.account_id = account_id
        self._account_concurrency = account_concurrency
        self._in_flight = 0
        self._global_lock = threading.Lock()
        self._init_timeout_s = init_timeout_s
        self._event_retry_delay_s = event_retry_delay_s
        self._max_event_age_s = max_event_age_s
        self._log_sink = log_sink
        self._write_bytecode = write_bytecode
        self._clock = clock
        self._closing = threading.Event()
        self._async = ThreadPoolExecutor(max_workers=async_workers, thread_name_prefix="event")
        self._last_modified = {lid: _now_iso() for lid in self._pools}
        spec_dir = importlib.util.find_spec("awslambdaric")
        origin = spec_dir.origin if spec_dir is not None else None
        self._runtime_dir = str(Path(origin).parent) if origin else sys.prefix
        self._janitor = threading.Thread(target=self._reap_idle_loop, name="janitor", daemon=True)
        self._janitor.start()

    # Lookup and configuration
    def function(self, name: str) -> FunctionSpec:
        """The spec of a function by name, logical id, name:qualifier or ARN."""
        return self._pool(name).spec

    def functions(self) -> list[FunctionSpec]:
        """Every function's current spec, in template order."""
        return [pool.spec for pool in self._pools.values()]

    def function_arn(self, spec: FunctionSpec, qualifier: str | None = None) -> str:
        """The ARN Lambda would give the function (with the qualifier when there is one)."""
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{spec.function_name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def last_modified(self, name: str) -> str:
        """When the function's configuration last changed (Lambda's LastModified format)."""
        return self._last_modified[self._pool(name).spec.logical_id]

    def concurrency(self, name: str) -> int:
        """Invocations of the function in flight now."""
        return self._pool(name).busy

    def warm_workers(self, name: str) -> int:
        """Idle execution environments kept warm for the function."""
        return len(self._pool(name).idle)

    def busy_worker_pids(self, name: str) -> list[int]:
        """Process ids of the function's environments handling an invocation now."""
        pool = self._pool(name)
        with pool.lock:
            return [worker.proc.pid for worker in pool.live if worker not in pool.idle]

    def _pool(self, name: str) -> _Pool:
        bare, _ = parse_function_name(name)
        logical_id = self._names.get(bare)
        if logical_id is None:
            raise FunctionNotFoundError(name)
        return self._pools[logical_id]

    def update_environment(self, name: str, env: Mapping[str, str]) -> FunctionSpec:
        """Replace the function's environment; warm workers end so the next invoke is cold."""
        return self.update_configuration(name, environment=env)

    def update_configuration(
        self,
        name: str,
        *,
        environment: Mapping[str, str] | None = None,
        memory_mb: int | None = None,
        timeout_s: int | None = None,
    ) -> FunctionSpec:
        """Change the function's configuration as UpdateFunctionConfiguration does."""
        pool = self._pool(name)
        changes: dict[str, Any] = {}
        if environment is not None:
            changes["environment"] = dict(environment)
        if memory_mb is not None:
            changes["memory_mb"] = memory_mb
        if timeout_s is not None:
            changes["timeout_s"] = timeout_s
        with pool.lock:
            pool.spec = dataclasses.replace(pool.spec, **changes)
        self._retire(pool)
        return pool.spec

    def retire_warm(self, name: str) -> int:
        """End the function's warm environments (its code changed): the next invoke is cold and
        loads the code anew; a busy one finishes its invocation, then ends. Returns how many
        idle environments ended."""
        return self._retire(self._pool(name))

    def _retire(self, pool: _Pool) -> int:
        with pool.lock:
            pool.generation += 1  # busy workers of older generations end when released
            stale, pool.idle = pool.idle, []
            pool.live.difference_update(stale)
        self._last_modified[pool.spec.logical_id] = _now_iso()
        for worker in stale:
            worker.stop()
        return len(stale)

    def put_function_concurrency(self, name: str, reserved: int | None) -> FunctionSpec:
        """Set (or with None remove) the reserved concurrency, as PutFunctionConcurrency does.

        Warm workers stay: Lambda keeps environments when only the concurrency changes.
        """
        if reserved is not None and reserved < 0:
            raise ValueError("reserved concurrency must be 0 or more")
        pool = self._pool(name)
        with pool.lock:
            pool.spec = dataclasses.replace(pool.spec, reserved_concurrency=reserved)
        return pool.spec

    def add_base_environment(self, env: Mapping[str, str]) -> None:
        """Add variables every worker started from now on gets (e.g. an endpoint known late)."""
        self._base_env.update(env)

    # Invocation
    def invoke(
        self,
        name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        log_tail: bool = False,
        client_context: str | None = None,
        request_id: str | None = None,
    ) -> InvokeResult:
        """Invoke synchronously (RequestResponse); raises ThrottledError beyond the concurrency.

        `request_id` keeps an Event invocation's id through its attempts, as Lambda does (its
        log lines carry the id the caller was given)."""
        pool = self._pool(name)
        qualifier = qualifier or parse_function_name(name)[1]
        payload = _validated(payload)
        worker, cold = self._acquire(pool)
        try:
            return self._run(
                pool=pool,
                worker=worker,
                cold=cold,
                payload=payload,
                qualifier=qualifier,
                log_tail=log_tail,
                client_context=client_context,
                request_id=request_id or str(uuid.uuid4()),
            )
        finally:
            with self._global_lock:
                self._in_flight -= 1

    def invoke_async(self, name: str, payload: bytes, *, qualifier: str | None = None) -> str:
        """Queue an Event invocation; failures are retried, then sent to the function's DLQ."""
        pool = self._pool(name)
        qualifier = qualifier or parse_function_name(name)[1]
        payload = _validated(payload)
        request_id = str(uuid.uuid4())
        self._async.submit(self._run_event, pool.spec.logical_id, payload, qualifier, request_id)
        return request_id

    def _acquire(self, pool: _Pool) -> tuple[Worker, bool]:
        with self._global_lock:
            if self._in_flight >= self._account_concurrency:
                raise ThrottledError("ConcurrentInvocationLimitExceeded")
            self._in_flight += 1
        try:
            return self._acquire_worker(pool)
        except BaseException:
            with self._global_lock:
                self._in_flight -= 1
            raise

    def _acquire_worker(self, pool: _Pool) -> tuple[Worker, bool]:
        expired = []
        with pool.lock:
            limit = pool.spec.reserved_concurrency
            if limit is not None and pool.busy >= limit:
                raise ThrottledError("ReservedFunctionConcurrentInvocationLimitExceeded")
            pool.busy += 1
            now = self._clock()
            while pool.idle and now - pool.idle[0].last_used >= self._idle_timeout_s:
                expired.append(pool.idle.pop(0))
            pool.live.difference_update(expired)
            worker = pool.idle.pop() if pool.idle else None
            spec, generation = pool.spec, pool.generation
        for stale in expired:
            stale.stop()
        if worker is not None:
            return worker, False
        try:
            worker = self._spawn(spec, generation)
        except BaseException:
            with pool.lock:
                pool.busy -= 1
            raise
        with pool.lock:
            pool.live.add(worker)
        return worker, True

    def _spawn(self, spec: FunctionSpec, generation: int) -> Worker:
        try:
            return Worker(
                spec,
                self._worker_env(spec),
                host=self._host,
                generation=generation,
                log_sink=self._log_sink,
            )
        except OSError as exc:
            raise LocalRuntimeError(f"cannot start {spec.function_name}: {exc}") from exc

    def _release(self, pool: _Pool, worker: Worker, *, reusable: bool) -> None:
        with pool.lock:
            pool.busy -= 1
            keep = reusable and worker.generation == pool.generation and not self._closing.is_set()
            if keep:
                worker.last_used = self._clock()
                pool.idle.append(worker)
            else:
                pool.live.discard(worker)
        if not keep:
            worker.stop()

    def _worker_env(self, spec: FunctionSpec) -> dict[str, str]:
        today = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
        python_path = os.pathsep.join([str(spec.code_dir), *(str(d) for d in spec.layer_dirs)])
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            # Lambda has no ~/.aws: keep the developer's profiles and real credentials out of reach.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **self._base_env,
            **spec.environment,
        }
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": EXECUTED_VERSION,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[{EXECUTED_VERSION}]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "LAMBDA_RUNTIME_DIR": self._runtime_dir,
                "_HANDLER": spec.handler,
                "PYTHONPATH": python_path,
                "PYTHONNOUSERSITE": "1",
            }
        )
        if not self._write_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # as on Lambda, where the code is read-only
        return env

    def _run(
        self,
        *,
        pool: _Pool,
        worker: Worker,
        cold: bool,
        payload: bytes,
        qualifier: str | None,
        log_tail: bool,
        client_context: str | None,
        request_id: str,
    ) -> InvokeResult:
        spec = worker.spec
        invocation = Invocation(
            request_id=request_id,
            payload=payload,
            invoked_arn=self.function_arn(spec, qualifier),
            timeout_s=float(spec.timeout_s),
            client_context=client_context,
            # Only a console folds pings: without a log sink nothing reads the flag.
            warming=self._log_sink is not None and _is_warming_ping(payload),
        )
        if cold:
            worker.write_platform_line(
                f"INIT_START Runtime Version: python:3.13.local\t"
                f"Runtime Version ARN: arn:aws:lambda:{self.region}::runtime:local",
                invocation,
            )
        reusable = False
        try:
            outcome, body = worker.run(invocation, init_timeout_s=self._init_timeout_s)
            finished = time.perf_counter()
            worker.drain_logs()
            reusable = outcome in ("success", "handled")
            init_ms = None
            if cold:
                init_end = worker.init_done_at if worker.init_done_at is not None else finished
                init_ms = (init_end - worker.spawned_at) * 1000
            delivered = invocation.delivered_at
            duration_ms = (finished - delivered) * 1000 if delivered is not None else 0.0
            payload_out, error_type, status = self._shape_outcome(
                outcome, body, worker, invocation, duration_ms
            )
            report = ReportLine(
                request_id=request_id,
                duration_ms=duration_ms,
                billed_duration_ms=ReportLine.billed(duration_ms),
                memory_size_mb=spec.memory_mb,
                max_memory_used_mb=min(worker.sample_peak(), spec.memory_mb),
                init_duration_ms=init_ms,
                status=status,
                error_type=error_type if status == "error" else None,
            )
            log = self._finish_log(worker, request_id, outcome, report, log_tail)
            return InvokeResult(
                request_id=request_id,
                status=200,
                payload=payload_out,
                function_error=None if outcome == "success" and error_type is None else "Unhandled",
                log_tail=log,
                report=report,
                cold=cold,
                error_type=error_type,
            )
        finally:
            worker.finish()
            self._release(pool, worker, reusable=reusable)

    def _shape_outcome(
        self,
        outcome: Outcome,
        body: bytes,
        worker: Worker,
        invocation: Invocation,
        duration_ms: float,
    ) -> tuple[bytes, str | None, str | None]:
        """The payload, error type and REPORT status Lambda gives for each outcome."""
        rid = invocation.request_id
        if outcome == "success" and len(body) > MAX_RESPONSE_BYTES:
            error = {
                "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum "
                f"allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
            return json.dumps(error).encode(), "Function.ResponseSizeTooLarge", None
        if outcome == "success":
            return body, None, None
        if outcome == "handled":
            return body, _error_type(body), None
        if outcome == "init_error":
            return body, _error_type(body), "error"
        if outcome == "timeout":
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            seconds = max(duration_ms / 1000, invocation.timeout_s)
            message = f"{stamp} {rid} Task timed out after {seconds:.2f} seconds"
            worker.write_platform_line(message)
            return json.dumps({"errorMessage": message}).encode(), "Sandbox.Timedout", "timeout"
        exit_status = worker.wait_exit_status()
        error_type = "Runtime.OutOfMemory" if outcome == "oom" else "Runtime.ExitError"
        message = f"RequestId: {rid} Error: Runtime exited with error: {exit_status}"
        worker.write_platform_line(message)
        error = {"errorType": error_type, "errorMessage": message}
        return json.dumps(error).encode(), error_type, "error"

    def _finish_log(
        self,
        worker: Worker,
        request_id: str,
        outcome: Outcome,
        report: ReportLine,
        log_tail: bool,
    ) -> bytes | None:
        del outcome
        worker.write_platform_line(f"END RequestId: {request_id}")
        worker.write_platform_line(report.render())
        log = worker.take_log()
        return log[-LOG_TAIL_BYTES:] if log_tail else None

    # Asynchronous invocations
    def _run_event(
        self, logical_id: str, payload: bytes, qualifier: str | None, request_id: str
    ) -> None:
        pool = self._pools[logical_id]
        attempts_left = 1 + pool.spec.max_event_retries
        first_try = self._clock()
        last: InvokeResult | None = None
        while attempts_left > 0 and not self._closing.is_set():
            try:
                result = self.invoke(
                    logical_id, payload, qualifier=qualifier, request_id=request_id
                )
            except ThrottledError:
                if self._clock() - first_try > self._max_event_age_s:
                    break
                self._closing.wait(max(self._event_retry_delay_s, _THROTTLE_RETRY_FLOOR_S))
                continue
            if result.function_error is None:
                return
            last = result
            attempts_left -= 1
            if attempts_left > 0:
                self._closing.wait(self._event_retry_delay_s)
        if not self._closing.is_set():
            self._dead_letter(pool.spec, payload, request_id, last)

    def _dead_letter(
        self,
        spec: FunctionSpec,
        payload: bytes,
        request_id: str,
        result: InvokeResult | None,
    ) -> None:
        url = self._dlq_url(spec)
        message = _error_message(result.payload) if result is not None else "Event expired"
        if url is None or self._sqs_endpoint_url is None:
            logger.warning(
                "async event failed, no dead-letter queue",
                extra={"function": spec.function_name, "request_id": request_id},
            )
            return
        # boto3 is heavy and only needed once an event has failed for good.
        from localstage.aws import AwsEmulatorError, send_dead_letter  # noqa: PLC0415

        try:
            send_dead_letter(
                self._sqs_endpoint_url,
                self.region,
                url,
                payload,
                request_id=request_id,
                error_message=message,
            )
        except AwsEmulatorError:
            logger.exception(
                "dead-letter delivery failed",
                extra={"function": spec.function_name, "request_id": request_id},
            )

    def _dlq_url(self, spec: FunctionSpec) -> str | None:
        for key in (spec.dead_letter_queue, spec.function_name, spec.logical_id):
            if key is not None and key in self._dlq_urls:
                return self._dlq_urls[key]
        return None

    # Lifecycle
    def _reap_idle_loop(self) -> None:
        interval = min(max(self._idle_timeout_s / 4, 0.05), 30.0)
        while not self._closing.wait(interval):
            self.reap_idle()

    def reap_idle(self) -> int:
        """Stop the workers idle for longer than the idle timeout; returns how many stopped."""
        now = self._clock()
        expired: list[Worker] = []
        for pool in self._pools.values():
            with pool.lock:
                keep = [w for w in pool.idle if now - w.last_used < self._idle_timeout_s]
                gone = [w for w in pool.idle if now - w.last_used >= self._idle_timeout_s]
                pool.live.difference_update(gone)
                expired += gone
                pool.idle = keep
        for worker in expired:
            worker.stop()
        return len(expired)

    def shutdown(self) -> None:
        """Stop every worker and the background threads."""
        self._closing.set()
        for pool in self._pools.values():
            with pool.lock:
                live, pool.idle = list(pool.live), []
                pool.live.clear()
            # A busy worker's invocation sees its process gone and ends with Runtime.ExitError.
            for worker in live:
                worker.stop()
        self._async.shutdown(wait=True, cancel_futures=True)
        self._janitor.join(timeout=2)

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _is_warming_ping(payload: bytes) -> bool:
    # lambdakit.warm's ping event: {"warmer": true, ...}; the cheap test first.
    if b'"warmer"' not in payload:
        return False
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("warmer") is True


def _validated(payload: bytes) -> bytes:
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except ValueError as exc:
        raise InvalidRequestContentError(f"Could not parse request body into json: {exc}") from exc
    return payload


def _error_type(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _error_message(body: bytes) -> str:
    try:
        value = json.loads(body).get("errorMessage")
    except (ValueError, AttributeError):
        return body.decode(errors="replace")
    return value if isinstance(value, str) else ""


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
