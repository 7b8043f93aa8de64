"""A loopback HTTP proxy in front of the AWS emulator that injects DynamoDB and S3 faults."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["FaultProxy", "ProxyFault", "operation_of", "start_fault_proxy"]

Service = Literal["dynamodb", "s3"]
# throttle: the service's throttling answer; error: `status` with `code`; unprocessed: a
# BatchWriteItem reaches the table with only half its requests, the rest come back unprocessed;
# drop: the request reaches the emulator, then the connection closes without an answer (the
# caller dies not knowing whether its write landed).
ProxyFaultKind = Literal["throttle", "error", "unprocessed", "drop"]
_DYNAMO_PREFIX = "DynamoDB_20120810."
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass(frozen=True, slots=True)
class ProxyFault:
    """Fires on the ``at``-th .. ``(at + times - 1)``-th matching call (``times`` None: all)."""

    service: Service
    operation: str = "*"  # DynamoDB target (BatchWriteItem...) or PutObject/GetObject/ListObjectsV2
    kind: ProxyFaultKind = "throttle"
    at: int = 1
    times: int | None = 1
    status: int = 500
    code: str = ""

    def answer(self) -> tuple[int, str, bytes]:
        """Status, content type and body of the injected error answer."""
        if self.service == "dynamodb":
            status, code = (
                (400, self.code or "ProvisionedThroughputExceededException")
                if self.kind == "throttle"
                else (self.status, self.code or "InternalServerError")
            )
            body = {
                "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                "message": f"injected fault: {code}",
            }
            return status, "application/x-amz-json-1.0", json.dumps(body).encode()
        status, code = (
            (503, self.code or "SlowDown")
            if self.kind == "throttle"
            else (self.status, self.code or "InternalError")
        )
        xml = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>injected fault: {code}</Message></Error>"
        )
        return status, "application/xml", xml.encode()


@dataclass(slots=True)
class _Rules:
    faults: tuple[ProxyFault, ...] = ()
    seen: list[int] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)


def operation_of(method: str, path: str, headers: Any) -> tuple[Service, str]:
    """Which service and operation a request to the emulator is (path-style S3 addressing)."""
    target = headers.get("X-Amz-Target") or ""
    if target.startswith(_DYNAMO_PREFIX):
        return "dynamodb", target[len(_DYNAMO_PREFIX) :]
    parts = urlsplit(path)
    has_key = "/" in parts.path.strip("/")
    if method == "PUT" and has_key:
        return "s3", "PutObject"
    if method == "GET" and has_key:
        return "s3", "GetObject"
    if method == "GET" and "list-type=2" in parts.query:
        return "s3", "ListObjectsV2"
    return "s3", f"{method} {parts.path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    upstream: tuple[str, int]
    rules: _Rules
    lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (a dropped answer) are part of the faults."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, delayed ACKs add ~40 ms a call.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the counters instead."""

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _decide(self, service: Service, operation: str) -> ProxyFault | None:
        rules = self.server.rules
        with self.server.lock:
            rules.calls[f"{service}:{operation}"] += 1
            chosen: ProxyFault | None = None
            for n, fault in enumerate(rules.faults):
                if fault.service != service or fault.operation not in ("*", operation):
                    continue
                rules.seen[n] += 1
                seen = rules.seen[n]
                if seen < fault.at or (fault.times is not None and seen >= fault.at + fault.times):
                    continue
                if chosen is None:
                    chosen = fault
                    rules.fired[f"{service}:{operation}:{fault.kind}"] += 1
            return chosen

    def _handle(self) -> None:
        body = self._read_body()
        service, operation = operation_of(self.command, self.path, self.headers)
        fault = self._decide(service, operation)
        if fault is not None and fault.kind in ("throttle", "error"):
            status, content_type, answer = fault.answer()
            self._reply(status, [("Content-Type", content_type)], answer)
            return
        unprocessed: dict[str, list[Any]] = {}
        if fault is not None and fault.kind == "unprocessed" and operation == "BatchWriteItem":
            request = json.loads(body)
            kept: dict[str, list[Any]] = {}
            for table, requests in request["RequestItems"].items():
                half = max(1, len(requests) // 2)
                kept[table] = requests[:half]
                if requests[half:]:
                    unprocessed[table] = requests[half:]
            body = json.dumps({**request, "RequestItems": kept}).encode()
        status, headers, answer = self._forward(body)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            self.wfile.flush()
            self.connection.close()
            return
        if unprocessed and status == 200:
            merged = json.loads(answer or b"{}")
            merged["UnprocessedItems"] = unprocessed
            answer = json.dumps(merged).encode()
            headers = [(k, v) for k, v in headers if k.lower() != "x-amz-crc32"]
        self._reply(status, headers, answer)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.upstream
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "host"
            }
            headers["Host"] = f"{host}:{port}"
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, answer
        finally:
            connection.close()

    def _reply(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class FaultProxy:
    """A running proxy: ``endpoint_url`` goes where the emulator's would (AWS_ENDPOINT_URL_*)."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"

    def set_faults(self, *faults: ProxyFault) -> None:
        """Replace the faults and their counters (no fault: a transparent proxy)."""
        with self._server.lock:
            self._server.rules = _Rules(faults=faults, seen=[0] * len(faults))

    @property
    def fired(self) -> Counter[str]:
        """Faults fired, by ``service:operation:kind``."""
        with self._server.lock:
            return Counter(self._server.rules.fired)

    @property
    def calls(self) -> Counter[str]:
        """Requests seen, by ``service:operation``."""
        with self._server.lock:
            return Counter(self._server.rules.calls)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_fault_proxy(upstream_url: str, host: str = "127.0.0.1") -> FaultProxy:
    """Start a transparent proxy to ``upstream_url`` on a free loopback port."""
    if host != "127.0.0.1":
        raise ValueError("the fault proxy listens on 127.0.0.1 only")
    target = urlsplit(upstream_url)
    if target.hostname != "127.0.0.1" or target.port is None:
        raise ValueError(f"the fault proxy forwards to loopback only, not {upstream_url}")
    server = _Server((host, 0), _Handler)
    server.upstream = (target.hostname, target.port)
    server.rules = _Rules()
    server.lock = threading.Lock()
    return FaultProxy(server)


def running_proxy(upstream_url: str) -> Iterator[FaultProxy]:
    """A proxy for a fixture: yields it, stops it afterwards."""
    proxy = start_fault_proxy(upstream_url)
    try:
        yield proxy
    finally:
        proxy.stop()
