"""Local Lambda runtime: awslambdaric worker processes served by a loopback Runtime API."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import http.server
import importlib.util
import json
import logging
import math
import os
import queue
import re
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from localstage.report_line import ReportLine

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
RUNTIME_API_PREFIX = "/2018-06-01/runtime"
EXECUTED_VERSION = "$LATEST"
_MONITOR_TICK_S = 0.02  # how often a waiting invocation checks the worker's liveness and memory
_THROTTLE_RETRY_FLOOR_S = 0.05  # a throttled event waits at least this long before trying again
# How Lambda (a Go program) words the signal that ended a runtime process.
_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
}
_REQUEST_ID_PATH = re.compile(
    r"^" + re.escape(RUNTIME_API_PREFIX) + r"/invocation/([^/]+)/(response|error)$"
)


class LocalRuntimeError(Exception):
    """Base of the local runtime's errors."""


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


@dataclass(slots=True)
class _Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    timeout_s: float
    client_context: str | None
    outcomes: queue.Queue[tuple[str, bytes]] = dataclasses.field(default_factory=queue.Queue)
    delivered_at: float | None = None


_Outcome = Literal["success", "handled", "init_error", "timeout", "exit", "oom"]


class _RuntimeApiHandler(http.server.BaseHTTPRequestHandler):
    """The Runtime API of one execution environment, as awslambdaric calls it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _RuntimeApiServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log out of the console."""

    def _reply(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path != RUNTIME_API_PREFIX + "/invocation/next":
            self._reply(404, b'{"errorType":"InvalidPath"}')
            return
        worker = self.server.worker
        worker.mark_ready()
        invocation = worker.next_invocation()
        if invocation is None:
            self.close_connection = True
            self._reply(503, b'{"errorType":"Shutdown"}')
            return
        worker.drain_logs()  # the init output comes before START
        worker.write_platform_line(
            f"START RequestId: {invocation.request_id} Version: {EXECUTED_VERSION}"
        )
        now_ms = time.time_ns() // 1_000_000
        invocation.delivered_at = time.perf_counter()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
        self.send_header(
            "Lambda-Runtime-Deadline-Ms", str(now_ms + int(invocation.timeout_s * 1000))
        )
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", invocation.invoked_arn)
        self.send_header("Lambda-Runtime-Trace-Id", _trace_id())
        if invocation.client_context:
            self.send_header("Lambda-Runtime-Client-Context", invocation.client_context)
        self.send_header("Content-Length", str(len(invocation.payload)))
        self.end_headers()
        self.wfile.write(invocation.payload)

    def do_POST(self) -> None:
        body = self._body()
        worker = self.server.worker
        if self.path == RUNTIME_API_PREFIX + "/init/error":
            worker.report("init_error", body)
            self._reply(202, b'{"status":"OK"}')
            return
        match = _REQUEST_ID_PATH.match(self.path)
        if match is None:
            self._reply(404, b'{"errorType":"InvalidPath"}')
            return
        kind = "success" if match.group(2) == "response" else "handled"
        if not worker.report(kind, body, request_id=match.group(1)):
            self._reply(400, b'{"errorType":"InvalidRequestID"}')
            return
        self._reply(202, b'{"status":"OK"}')


class _RuntimeApiServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, worker: _Worker) -> None:
        self.worker = worker
        super().__init__((host, 0), _RuntimeApiHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A worker killed mid-request resets its connection: expected, not worth a traceback."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


def _trace_id() -> str:
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
    )


def _peak_rss_mib(pid: int) -> int:
    """VmHWM (peak resident set) of a process, in MiB rounded up; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
    except OSError:
        return 0
    return 0


class _Worker:
    """One execution environment: an awslambdaric process and its own Runtime API server."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        host: str,
        generation: int,
        log_sink: Callable[[str, str], None] | None,
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.last_used = 0.0
        self.init_done_at: float | None = None
        self.peak_mib = 0
        self._log_sink = log_sink
        self._next: queue.Queue[_Invocation | None] = queue.Queue()
        self._current: _Invocation | None = None
        self._current_lock = threading.Lock()
        self._early: list[tuple[str, bytes]] = []  # init error posted before the invoke arrived
        self._log_lock = threading.Lock()
        self._log = bytearray()
        self._partial = b""
        self._stopped = False
        self.server = _RuntimeApiServer(host, self)
        port = self.server.server_address[1]
        self._server_thread = threading.Thread(
            target=self.server.serve_forever, name=f"rapi-{spec.function_name}", daemon=True
        )
        self._server_thread.start()
        env = {**env, "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}"}
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", spec.handler],
            cwd=spec.code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill takes its children too
        )
        if self.proc.stdout is None:  # pragma: no cover - Popen was given stdout=PIPE
            raise LocalRuntimeError("worker started without a stdout pipe")
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._reader = threading.Thread(
            target=self._pump_logs, name=f"logs-{spec.function_name}", daemon=True
        )
        self._reader.start()

    # Runtime API side
    def mark_ready(self) -> None:
        if self.init_done_at is None:
            self.init_done_at = time.perf_counter()

    def next_invocation(self) -> _Invocation | None:
        return self._next.get()

    def report(self, kind: str, body: bytes, request_id: str | None = None) -> bool:
        with self._current_lock:
            invocation = self._current
            if invocation is None and request_id is None:
                self._early.append((kind, body))
                return True
        if invocation is None or (request_id is not None and request_id != invocation.request_id):
            return False
        invocation.outcomes.put((kind, body))
        return True

    # Logs
    def _pump_logs(self) -> None:
        while True:
            try:
                select.select([self._fd], [], [])
            except (OSError, ValueError):
                return
            if not self.drain_logs():
                return

    def drain_logs(self) -> bool:
        """Move what the process wrote so far into the log buffer; False at end of file."""
        with self._log_lock:
            while True:
                try:
                    chunk = os.read(self._fd, 65536)
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if not chunk:
                    return False
                self._log += chunk
                if self._log_sink is not None:
                    self._emit(chunk)

    def _emit(self, chunk: bytes) -> None:
        if self._log_sink is None:
            return
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._log_sink(self.spec.function_name, line.decode(errors="replace"))

    def write_platform_line(self, line: str) -> None:
        with self._log_lock:
            self._log += line.encode() + b"\n"
        if self._log_sink is not None:
            self._log_sink(self.spec.function_name, line)

    def take_log(self) -> bytes:
        with self._log_lock:
            data = bytes(self._log)
            self._log.clear()
        return data

    # Invocation side
    def run(self, invocation: _Invocation, *, init_timeout_s: float) -> tuple[_Outcome, bytes]:
        """Deliver one invocation and wait for its outcome (kills the process on timeout/OOM).

        Memory: RLIMIT_AS is not used because CPython's virtual size (thread stacks, malloc
        arenas) is several times its resident size, so any limit tight enough to matter breaks
        healthy workers. The peak resident size (VmHWM, what Lambda's Max Memory Used reports)
        is checked every tick and at the response instead; over MemorySize, the process is
        killed and the invocation fails with Runtime.OutOfMemory, as on Lambda.
        """
        with self._current_lock:
            self._current = invocation
            for early in self._early:
                invocation.outcomes.put(early)
            self._early.clear()
        self._next.put(invocation)
        memory_limit = self.spec.memory_mb
        self.sample_peak()
        # Until the worker takes the event it has init_timeout_s to ask for it, counted from its
        # spawn when cold, or from now when warm (a busy machine may delay a warm worker's next
        # request; counting from spawn would kill any warm worker older than init_timeout_s).
        pickup_deadline = (
            self.spawned_at if self.init_done_at is None else time.perf_counter()
        ) + init_timeout_s
        while True:
            delivered = invocation.delivered_at
            deadline = pickup_deadline if delivered is None else delivered + invocation.timeout_s
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.kill()
                return "timeout", b""
            try:
                kind, body = invocation.outcomes.get(timeout=min(remaining, _MONITOR_TICK_S))
            except queue.Empty:
                if self.sample_peak() > memory_limit:
                    self.kill()
                    return "oom", b""
                if self.proc.poll() is not None:
                    # The process may have posted an outcome just before it exited.
                    with contextlib.suppress(queue.Empty):
                        kind, body = invocation.outcomes.get_nowait()
                        return _outcome(kind), body
                    return "exit", b""
                continue
            if kind in ("success", "handled") and self.sample_peak() > memory_limit:
                self.kill()
                return "oom", b""
            return _outcome(kind), body

    def sample_peak(self) -> int:
        """The process's peak memory so far (kept after it exits), in MiB."""
        self.peak_mib = max(self.peak_mib, _peak_rss_mib(self.proc.pid))
        return self.peak_mib

    def finish(self) -> None:
        with self._current_lock:
            self._current = None

    def wait_exit_status(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        if code < 0:
            name = _SIGNAL_WORDS.get(-code) or signal.Signals(-code).name.lower()
            return f"signal: {name}"
        return f"exit status {code}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """End the process, its Runtime API server and its threads (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._next.put(None)
        # serve_forever notices a shutdown only at its next poll: close it off the caller's path.
        threading.Thread(target=self._close_server, name="rapi-close", daemon=True).start()

    def _close_server(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._reader.join(timeout=1)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _outcome(kind: str) -> _Outcome:
    if kind == "success":
        return "success"
    if kind == "handled":
        return "handled"
    return "init_error"


class _Pool:
    """The execution environments of one function."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []  # most recently used last
        self.live: set[_Worker] = set()  # every worker not yet stopped, idle or busy
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
        log_sink: Callable[[str, str], None] | None = None,
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
        self._sqs: Any = None
        self._sqs_lock = threading.Lock()
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
            pool.generation += 1
            stale, pool.idle = pool.idle, []
            pool.live.difference_update(stale)
        self._last_modified[pool.spec.logical_id] = _now_iso()
        for worker in stale:
            worker.stop()
        return pool.spec

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
    ) -> InvokeResult:
        """Invoke synchronously (RequestResponse); raises ThrottledError beyond the concurrency."""
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

    def _acquire(self, pool: _Pool) -> tuple[_Worker, bool]:
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

    def _acquire_worker(self, pool: _Pool) -> tuple[_Worker, bool]:
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

    def _spawn(self, spec: FunctionSpec, generation: int) -> _Worker:
        try:
            return _Worker(
                spec,
                self._worker_env(spec),
                host=self._host,
                generation=generation,
                log_sink=self._log_sink,
            )
        except OSError as exc:
            raise LocalRuntimeError(f"cannot start {spec.function_name}: {exc}") from exc

    def _release(self, pool: _Pool, worker: _Worker, *, reusable: bool) -> None:
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
        worker: _Worker,
        cold: bool,
        payload: bytes,
        qualifier: str | None,
        log_tail: bool,
        client_context: str | None,
    ) -> InvokeResult:
        spec = worker.spec
        request_id = str(uuid.uuid4())
        invocation = _Invocation(
            request_id=request_id,
            payload=payload,
            invoked_arn=self.function_arn(spec, qualifier),
            timeout_s=float(spec.timeout_s),
            client_context=client_context,
        )
        if cold:
            worker.write_platform_line(
                f"INIT_START Runtime Version: python:3.13.local\t"
                f"Runtime Version ARN: arn:aws:lambda:{self.region}::runtime:local"
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
        outcome: _Outcome,
        body: bytes,
        worker: _Worker,
        invocation: _Invocation,
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
        worker: _Worker,
        request_id: str,
        outcome: _Outcome,
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
                result = self.invoke(logical_id, payload, qualifier=qualifier)
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
        # botocore is heavy and only needed once an event has failed for good.
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self._sqs_client().send_message(
                QueueUrl=url,
                MessageBody=payload.decode(errors="replace"),
                MessageAttributes={
                    "RequestID": {"DataType": "String", "StringValue": request_id},
                    "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                    "ErrorMessage": {"DataType": "String", "StringValue": message[:1024] or "-"},
                },
            )
        except (BotoCoreError, ClientError):
            logger.exception(
                "dead-letter delivery failed",
                extra={"function": spec.function_name, "request_id": request_id},
            )

    def _dlq_url(self, spec: FunctionSpec) -> str | None:
        for key in (spec.dead_letter_queue, spec.function_name, spec.logical_id):
            if key is not None and key in self._dlq_urls:
                return self._dlq_urls[key]
        return None

    def _sqs_client(self) -> Any:
        with self._sqs_lock:
            if self._sqs is None:
                import boto3  # noqa: PLC0415  # heavy; only a dead-lettered event needs it

                self._sqs = boto3.session.Session(
                    aws_access_key_id=self._base_env.get("AWS_ACCESS_KEY_ID", "testing"),
                    aws_secret_access_key=self._base_env.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    region_name=self.region,
                ).client("sqs", endpoint_url=self._sqs_endpoint_url)
            return self._sqs

    # Lifecycle
    def _reap_idle_loop(self) -> None:
        interval = min(max(self._idle_timeout_s / 4, 0.05), 30.0)
        while not self._closing.wait(interval):
            self.reap_idle()

    def reap_idle(self) -> int:
        """Stop the workers idle for longer than the idle timeout; returns how many stopped."""
        now = self._clock()
        expired: list[_Worker] = []
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
