"""API Gateway front: REST API proxy events (payload 1.0) for the template's routes, on loopback.

This module is the HTTP side (connections, quotas, API keys, invoking the function); the proxy
integration itself (routes, events, responses, gateway errors) is localstage.apigw_proxy.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from localstage.access_log import AccessEntry
from localstage.apigw_proxy import (
    MAX_REQUEST_BYTES,
    GatewayReply,
    HttpRequest,
    InvalidProxyResponseError,
    RouteTable,
    StageContext,
    build_event,
    gateway_error,
    map_proxy_response,
    trace_id,
)
from localstage.runtime import LocalRuntimeError, ThrottledError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from localstage.runtime import InvokeResult, LocalRuntime
    from localstage.spec import ApiRoute

__all__ = ["ApiFront", "start_api_front"]

logger = logging.getLogger(__name__)


MAX_LAMBDA_EVENT_BYTES: Final = 6 * 1024 * 1024  # Lambda's synchronous invocation payload quota
INTEGRATION_TIMEOUT_S: Final = 29.0  # REST API's default (and usual maximum) integration timeout
_DRAIN_LIMIT = 8 * MAX_REQUEST_BYTES  # an oversized body beyond this is not read, the socket closes
# REST API quotas ("Quotas for configuring and running a REST API in API Gateway"): the URL of a
# regional API is at most 10240 characters, and all header names, values, line terminators and
# white space together at most 10240 bytes. Neither status is documented: 414 and 431 here.
MAX_URL_CHARS: Final = 10240
MAX_HEADER_BYTES: Final = 10240
_LINE_READ_LIMIT = 65536  # what the standard library reads of one line before it gives up


# The HTTP front
class _BadRequestError(Exception):
    """A request the front cannot parse (a broken Content-Length or chunk size)."""


class _FrontHandler(http.server.BaseHTTPRequestHandler):
    """One connection: every method reaches routing, every refusal is a gateway response.

    The standard library answers an unknown method, an over-long line or a malformed request
    with its own HTML page; API Gateway answers each in its JSON shape, so those paths are
    overridden here (handle_one_request and send_error).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _FrontServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log out of the console (the front logs each request itself)."""

    def handle_one_request(self) -> None:
        """Read one request and answer it, whatever its method (TRACE, FOO...)."""
        try:
            self.raw_requestline = self.rfile.readline(_LINE_READ_LIMIT + 1)
        except TimeoutError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > _LINE_READ_LIMIT:
            self.requestline, self.command = "", ""
            self._refuse("URI_TOO_LONG")
            return
        if not self.parse_request():  # it has answered through send_error
            return
        self._handle()
        self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's refusals (bad syntax, too many headers...) as gateway JSON."""
        kind = {414: "URI_TOO_LONG", 431: "HEADERS_TOO_LARGE"}.get(code, "BAD_REQUEST")
        self._refuse(kind)

    def _refuse(self, kind: str) -> None:
        self.close_connection = True
        self.request_version = self.protocol_version  # never an HTTP/0.9 answer without headers
        reply, request_id = gateway_error(kind), str(uuid.uuid4())
        self._send(reply, request_id)
        self._log(reply.status, 0.0, request_id)

    def _send(self, reply: GatewayReply, request_id: str) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("x-amz-apigw-id", base64.b64encode(secrets.token_bytes(10)).decode())
        self.send_header("X-Amzn-Trace-Id", trace_id())
        if reply.error_type is not None:
            self.send_header("x-amzn-ErrorType", reply.error_type)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _over_quota(self) -> str | None:
        """The gateway response a request over the URL or header quota gets, else None."""
        if len(self.path) > MAX_URL_CHARS:
            return "URI_TOO_LONG"
        header_bytes = sum(len(name) + len(value) + 4 for name, value in self.headers.items())
        if header_bytes > MAX_HEADER_BYTES:
            return "HEADERS_TOO_LARGE"
        return None

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            raise _BadRequestError(f"Content-Length {text[:40]!r}")
        return int(text)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(_LINE_READ_LIMIT).split(b";", 1)[0].strip()
            try:
                length = int(line or b"0", 16)
            except ValueError:
                raise _BadRequestError("chunk size") from None
            if length < 0:
                raise _BadRequestError("chunk size")
            if length == 0:
                self.rfile.readline(_LINE_READ_LIMIT)
                break
            size += length
            if size > _DRAIN_LIMIT:
                self.close_connection = True
                return None
            chunk = self.rfile.read(length)
            if size <= MAX_REQUEST_BYTES:
                chunks.append(chunk)
            self.rfile.readline(_LINE_READ_LIMIT)
        return b"".join(chunks) if size <= MAX_REQUEST_BYTES else None

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is over the 10 MB quota."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = self._content_length()
        if length <= MAX_REQUEST_BYTES:
            return self.rfile.read(length)
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return None
        remaining = length
        while remaining > 0:  # drain, so the client reads the 413 instead of a reset
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return None

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        refusal = self._over_quota()
        if refusal is not None:
            self.close_connection = True  # the body, if any, is not read
            reply = gateway_error(refusal)
        else:
            try:
                body = self._read_body()
            except _BadRequestError:
                self.close_connection = True
                body, reply = None, gateway_error("BAD_REQUEST")
            else:
                reply = (
                    gateway_error("REQUEST_TOO_LARGE")
                    if body is None
                    else self.server.front.respond(self._request(body), request_id)
                )
        # The access line is written before the answer leaves, so a client that has its answer
        # finds the line already there.
        self._access(reply, time.perf_counter() - started, request_id)
        self._send(reply, request_id)
        self._log(reply.status, time.perf_counter() - started, request_id)

    def _request(self, body: bytes) -> HttpRequest:
        parts = urlsplit(self.path)
        return HttpRequest(
            method=self.command,
            path=parts.path or "/",
            query=parts.query,
            headers=tuple(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )

    def _access(self, reply: GatewayReply, seconds: float, request_id: str) -> None:
        """The stage's access log line (the API's AccessLogSetting), when the stage keeps one."""
        write = self.server.front.access_log
        if write is None:
            return
        error = None
        if reply.error_type is not None:
            try:
                error = str(json.loads(reply.body).get("message", reply.error_type))
            except (ValueError, AttributeError):
                error = reply.error_type
        write(
            AccessEntry(
                request_id=request_id,
                method=self.command or "",
                path=getattr(self, "path", ""),
                status=reply.status,
                seconds=seconds,
                source_ip=self.client_address[0],
                protocol=self.request_version,
                response_length=len(reply.body),
                error_message=error,
                integrated=reply.error_type is None,
            )
        )

    def _log(self, status: int, seconds: float, request_id: str) -> None:
        logger.info(
            "api request",
            extra={
                "method": self.command or "",  # unset when the request line did not parse
                "path": getattr(self, "path", "")[:200],
                "status": status,
                "request_id": request_id,
                "duration_ms": round(seconds * 1000, 2),
            },
        )


class _FrontServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], front: ApiFront) -> None:
        self.front = front
        super().__init__(address, _FrontHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not worth a traceback."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


@dataclass(slots=True)
class _Outcome:
    result: InvokeResult | None = None
    error: LocalRuntimeError | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ApiFront:
    """A REST API stage in front of the local runtime; start it with start_api_front.

    As a REST API does: routes matched per RouteTable; an unknown path or a method the resource
    lacks gets 403 {"message": "Missing Authentication Token"} (REST APIs never answer 404
    themselves), whatever the method (TRACE, or one HTTP does not know); a URL over 10240
    characters gets 414 and headers over 10240 bytes 431, a request that does not parse 400,
    each in the gateway's JSON shape; a key-required route without a known ``x-api-key`` gets
    403 Forbidden; a body over 10 MB gets 413; a function error (its own timeout included), a
    malformed proxy response or a runtime failure gets 502 "Internal server error"; a throttled
    invoke gets 429; an invocation longer than the integration timeout (29 s) gets 504 while the
    function runs on. Gateway responses carry x-amzn-ErrorType; every answer x-amzn-RequestId (the
    event's requestContext.requestId), x-amz-apigw-id and X-Amzn-Trace-Id.

    Local differences: paths are served without the /<stage> prefix; no usage-plan quotas or
    stage throttling (only Lambda's concurrency throttles); IAM routes are open unless
    ``iam_mode`` is on, and then only the presence of a SigV4 Authorization header is checked,
    not the signature; no CORS preflight, authorizers, caching or stage variables; every
    non-text request body is base64-encoded (binaryMediaTypes is not consulted) and an
    ``isBase64Encoded`` response is always decoded.
    """

    def __init__(
        self,
        routes: Sequence[ApiRoute],
        runtime: LocalRuntime,
        *,
        function_names: Mapping[str, str],
        api_keys: Collection[str],
        stage: str,
        host: str,
        port: int,
        iam_mode: bool,
        integration_timeout_s: float,
    ) -> None:
        self.routes = RouteTable(routes)
        # Set by the stage to write the API's access log lines (localstage.access_log).
        self.access_log: Callable[[AccessEntry], None] | None = None
        self._runtime = runtime
        self._function_names = dict(function_names)
        self._api_keys = frozenset(api_keys)
        self._iam_mode = iam_mode
        self._integration_timeout_s = integration_timeout_s
        self._server = _FrontServer((host, port), self)
        self.url = f"http://{host}:{self._server.server_port}"
        self.stage = StageContext(
            stage=stage,
            account_id=runtime.account_id,
            domain_name=f"{host}:{self._server.server_port}",
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="apigw-front", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the front listens on."""
        return self._server.server_port

    def respond(self, request: HttpRequest, request_id: str) -> GatewayReply:
        """Route, authorise, invoke and map one request, as a REST API stage does."""
        matched = self.routes.match(request.method, request.path)
        if matched is None:
            return gateway_error("MISSING_AUTHENTICATION_TOKEN")
        access_key = None
        if self._iam_mode and matched.route.iam_auth:
            access_key = _sigv4_access_key(request.header("Authorization"))
            if access_key is None:
                return gateway_error("MISSING_AUTHENTICATION_TOKEN")
        api_key = None
        if matched.route.api_key_required:
            api_key = request.header("x-api-key")
            if api_key is None or api_key not in self._api_keys:
                return gateway_error("INVALID_API_KEY")
        event = build_event(
            request,
            matched,
            self.stage,
            request_id=request_id,
            epoch_ms=time.time_ns() // 1_000_000,
            api_key=api_key,
            access_key=access_key,
        )
        payload = json.dumps(event).encode()
        if len(payload) > MAX_LAMBDA_EVENT_BYTES:
            return gateway_error("INTEGRATION_FAILURE")  # Lambda refuses it: 6 MB quota
        function = self._function_names.get(matched.route.function, matched.route.function)
        return self._integrate(function, payload, request_id)

    def _integrate(self, function: str, payload: bytes, request_id: str) -> GatewayReply:
        outcome = _Outcome()

        def call() -> None:
            try:
                outcome.result = self._runtime.invoke(function, payload)
            except LocalRuntimeError as exc:
                outcome.error = exc
            finally:
                outcome.done.set()

        # The invocation runs on its own thread: past the integration timeout the client gets a
        # 504 while the function carries on, as with a real integration.
        threading.Thread(target=call, name=f"apigw-{request_id[:8]}", daemon=True).start()
        if not outcome.done.wait(self._integration_timeout_s):
            logger.warning("integration timed out", extra={"function": function})
            return gateway_error("INTEGRATION_TIMEOUT")
        if isinstance(outcome.error, ThrottledError):
            return gateway_error("THROTTLED")
        result = outcome.result
        if result is None:
            logger.warning(
                "integration failed", extra={"function": function, "error": str(outcome.error)}
            )
            return gateway_error("INTEGRATION_FAILURE")
        if result.function_error is not None:
            logger.warning(
                "function error", extra={"function": function, "error_type": result.error_type}
            )
            return gateway_error("INTEGRATION_FAILURE")
        try:
            return map_proxy_response(result.payload)
        except InvalidProxyResponseError as exc:
            logger.warning(
                "malformed Lambda proxy response", extra={"function": function, "why": str(exc)}
            )
            return gateway_error("INTEGRATION_FAILURE")

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> ApiFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sigv4_access_key(authorization: str | None) -> str | None:
    """The access key id of a SigV4 Authorization header (the signature is not checked)."""
    prefix = "AWS4-HMAC-SHA256 "
    if not authorization or not authorization.startswith(prefix):
        return None
    for part in authorization[len(prefix) :].split(","):
        name, _, value = part.strip().partition("=")
        if name == "Credential" and "/" in value:
            return value.split("/", 1)[0] or None
    return None


def start_api_front(
    routes: Sequence[ApiRoute],
    runtime: LocalRuntime,
    *,
    function_names: Mapping[str, str],
    api_keys: Collection[str],
    stage: str = "local",
    host: str = "127.0.0.1",
    port: int = 3000,
    iam_mode: bool = False,
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
) -> ApiFront:
    """Serve the routes on host:port (port 0 picks a free one) until ApiFront.close()."""
    return ApiFront(
        routes,
        runtime,
        function_names=function_names,
        api_keys=api_keys,
        stage=stage,
        host=host,
        port=port,
        iam_mode=iam_mode,
        integration_timeout_s=integration_timeout_s,
    )
