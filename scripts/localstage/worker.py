"""One execution environment: an awslambdaric process, its Runtime API server and its log.

A Worker starts `python -m awslambdaric <handler>` in the function's code folder with its own
loopback Runtime API (localstage.runtime_api), hands it one invocation at a time and watches it
as Lambda does: init and invocation timeouts, memory (peak RSS against MemorySize), the process
exiting. LocalRuntime (localstage.runtime) keeps a pool of them per function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from localstage.runtime_api import RuntimeApiServer

if TYPE_CHECKING:
    from collections.abc import Callable

    from localstage.spec import FunctionSpec

__all__ = ["Invocation", "LocalRuntimeError", "Outcome", "Worker"]

_MONITOR_TICK_S = 0.02  # how often a waiting invocation checks the worker's liveness and memory
# How Lambda (a Go program) words the signal that ended a runtime process.
_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
}


class LocalRuntimeError(Exception):
    """Base of the local runtime's errors."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line as a log sink receives it: a function's, or an API access line."""

    function: str  # the function's name (its log group's), or the API's logical id
    text: str
    logical_id: str = ""  # the template's logical id of what wrote it
    request_id: str | None = None  # None for lines written outside an invocation (init)
    warming: bool = False  # written by an invocation that was a warming ping
    access: bool = False  # an API Gateway access log line


type LogSink = Callable[[LogLine], None]


@dataclass(slots=True)
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    timeout_s: float
    client_context: str | None
    warming: bool = False
    outcomes: queue.Queue[tuple[str, bytes]] = dataclasses.field(default_factory=queue.Queue)
    delivered_at: float | None = None


Outcome = Literal["success", "handled", "init_error", "timeout", "exit", "oom"]


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


class Worker:
    """One execution environment: an awslambdaric process and its own Runtime API server."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        host: str,
        generation: int,
        log_sink: LogSink | None,
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.last_used = 0.0
        self.init_done_at: float | None = None
        self.peak_mib = 0
        self._log_sink = log_sink
        self._next: queue.Queue[Invocation | None] = queue.Queue()
        self._current: Invocation | None = None
        self._current_lock = threading.Lock()
        self._early: list[tuple[str, bytes]] = []  # init error posted before the invoke arrived
        self._log_lock = threading.Lock()
        self._log = bytearray()
        self._partial = b""
        self._stopped = False
        self.server = RuntimeApiServer(host, self)
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

    def next_invocation(self) -> Invocation | None:
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
            self._sink_line(line.decode(errors="replace"))

    def _sink_line(self, text: str, invocation: Invocation | None = None) -> None:
        if self._log_sink is None:
            return
        # A reference read: the line belongs to the invocation running (or the one named).
        current = invocation or self._current
        request_id = current.request_id if current is not None else None
        warming = current.warming if current is not None else False
        spec = self.spec
        self._log_sink(LogLine(spec.function_name, text, spec.logical_id, request_id, warming))

    def write_platform_line(self, line: str, invocation: Invocation | None = None) -> None:
        """A line of the platform's own (INIT_START, END, REPORT), for `invocation` if given,
        else for the one running."""
        with self._log_lock:
            self._log += line.encode() + b"\n"
        self._sink_line(line, invocation)

    def take_log(self) -> bytes:
        with self._log_lock:
            data = bytes(self._log)
            self._log.clear()
        return data

    # Invocation side
    def run(self, invocation: Invocation, *, init_timeout_s: float) -> tuple[Outcome, bytes]:
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
                        return outcome_of(kind), body
                    return "exit", b""
                continue
            if kind in ("success", "handled") and self.sample_peak() > memory_limit:
                self.kill()
                return "oom", b""
            return outcome_of(kind), body

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


def outcome_of(kind: str) -> Outcome:
    if kind == "success":
        return "success"
    if kind == "handled":
        return "handled"
    return "init_error"
