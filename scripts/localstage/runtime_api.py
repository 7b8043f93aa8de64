"""The Runtime API one execution environment's awslambdaric calls, served on loopback.

`GET .../invocation/next` hands the worker its next invocation (with Lambda's headers: request
id, deadline, function ARN, trace id); `POST .../response`, `.../error` and `/init/error` report
how it ended. The Worker (localstage.worker) owns the server and the invocation queue.
"""

from __future__ import annotations

import http.server
import re
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localstage.worker import Worker

__all__ = ["EXECUTED_VERSION", "RUNTIME_API_PREFIX", "RuntimeApiServer"]

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
EXECUTED_VERSION = "$LATEST"
_REQUEST_ID_PATH = re.compile(
    r"^" + re.escape(RUNTIME_API_PREFIX) + r"/invocation/([^/]+)/(response|error)$"
)


class _RuntimeApiHandler(http.server.BaseHTTPRequestHandler):
    """The Runtime API of one execution environment, as awslambdaric calls it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: RuntimeApiServer

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


class RuntimeApiServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, worker: Worker) -> None:
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
