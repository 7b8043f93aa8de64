"""API Gateway front: REST API proxy events (payload 1.0) for the template's routes, on loopback."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
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
from urllib.parse import parse_qsl, unquote, urlsplit

from localstage.runtime import LocalRuntimeError, ThrottledError

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from localstage.runtime import InvokeResult, LocalRuntime
    from localstage.spec import ApiRoute

__all__ = [
    "MAX_REQUEST_BYTES",
    "ApiFront",
    "ApiGatewayError",
    "GatewayReply",
    "HttpRequest",
    "InvalidProxyResponseError",
    "RouteMatch",
    "RouteTable",
    "StageContext",
    "api_key_id",
    "build_event",
    "gateway_error",
    "is_text_content_type",
    "map_proxy_response",
    "start_api_front",
    "trace_id",
]

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024  # API Gateway's request payload quota
MAX_LAMBDA_EVENT_BYTES: Final = 6 * 1024 * 1024  # Lambda's synchronous invocation payload quota
INTEGRATION_TIMEOUT_S: Final = 29.0  # REST API's default (and usual maximum) integration timeout
_DRAIN_LIMIT = 8 * MAX_REQUEST_BYTES  # an oversized body beyond this is not read, the socket closes
# REST API quotas ("Quotas for configuring and running a REST API in API Gateway"): the URL of a
# regional API is at most 10240 characters, and all header names, values, line terminators and
# white space together at most 10240 bytes. Neither status is documented: 414 and 431 here.
MAX_URL_CHARS: Final = 10240
MAX_HEADER_BYTES: Final = 10240
_LINE_READ_LIMIT = 65536  # what the standard library reads of one line before it gives up
# What a REST API's ANY method stands for; any other method (TRACE, CONNECT...) matches no route.
_ANY_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROXY_RESPONSE_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)
# Response headers API Gateway keeps for itself: an integration's value comes back renamed.
_REMAPPED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "date",
        "expect",
        "host",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
        "www-authenticate",
    }
)
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/graphql",
    }
)

# The default gateway responses of a REST API: status, message, x-amzn-ErrorType.
_GATEWAY_ERRORS: Final[dict[str, tuple[int, str, str]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLargeException"),
    "URI_TOO_LONG": (414, "Request URI too long", "RequestUriTooLongException"),
    "HEADERS_TOO_LARGE": (
        431,
        "Request Header Fields Too Large",
        "RequestHeadersTooLargeException",
    ),
    "BAD_REQUEST": (400, "Bad Request", "BadRequestException"),
    "THROTTLED": (429, "Too Many Requests", "TooManyRequestsException"),
    "INTEGRATION_FAILURE": (502, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "InternalServerErrorException"),
}


class ApiGatewayError(Exception):
    """Base of the API Gateway front's errors."""


class InvalidProxyResponseError(ApiGatewayError):
    """The function answered something that is not a Lambda proxy response (a 502 for clients)."""


# Routing
@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The route a request resolved to and the path parameters taken from it."""

    route: ApiRoute
    path_parameters: dict[str, str] | None  # None when the route has no {param}


def _segments(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _match_resource(template: list[str], actual: list[str]) -> tuple[int, ...] | None:
    """A specificity key when the request segments fit the template, else None.

    Per segment 0 is a literal, 1 a {param}, 2 a {greedy+}: the smallest key wins, so literal
    segments beat parameters and a greedy path variable comes last, as in API Gateway.
    """
    key: list[int] = []
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            if index != len(template) - 1 or len(actual) <= index:
                return None
            key.append(2)
            return tuple(key)
        if index >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not actual[index]:
                return None
            key.append(1)
        elif unquote(actual[index]) != part:
            return None
        else:
            key.append(0)
    return tuple(key) if len(template) == len(actual) else None


def _path_parameters(template: list[str], actual: list[str]) -> dict[str, str] | None:
    values: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            values[part[1:-2]] = "/".join(actual[index:])
        elif part.startswith("{") and part.endswith("}"):
            values[part[1:-1]] = actual[index]
    return values or None


class RouteTable:
    """The resources and methods of a REST API, matched the way API Gateway matches them.

    A request first resolves to the most specific resource (literal segments beat {param}
    segments, which beat a trailing {proxy+}); the method is then looked up on that resource,
    exact method before ANY. Like a REST API, there is no fall-back to a less specific resource
    when the method is missing: the request gets no route (403 Missing Authentication Token).
    """

    def __init__(self, routes: Sequence[ApiRoute]) -> None:
        self._resources: dict[str, dict[str, ApiRoute]] = {}
        for route in routes:
            path = "/" + "/".join(_segments(route.path))
            self._resources.setdefault(path, {})[route.method.upper()] = route
        self._templates = {path: _segments(path) for path in self._resources}

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for a request path (raw, still percent-encoded) and method, or None."""
        actual = _segments(path)
        best: tuple[tuple[int, ...], str] | None = None
        for resource, template in self._templates.items():
            key = _match_resource(template, actual)
            if key is not None and (best is None or key < best[0]):
                best = (key, resource)
        if best is None:
            return None
        methods = self._resources[best[1]]
        route = methods.get(method.upper())
        if route is None and method.upper() in _ANY_METHODS:
            route = methods.get("ANY")
        if route is None:
            return None
        return RouteMatch(route, _path_parameters(self._templates[best[1]], actual))


# Events
@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request as the front received it."""

    method: str
    path: str  # raw path, percent-encoding kept
    query: str  # raw query string, without "?"
    headers: tuple[tuple[str, str], ...]  # in arrival order, names as sent
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The last value of a header, by case-insensitive name."""
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class StageContext:
    """What API Gateway knows about the API and stage a request arrived on."""

    stage: str = "local"
    api_id: str = "localapi01"
    account_id: str = "123456789012"
    domain_name: str = "127.0.0.1:3000"


def api_key_id(key: str) -> str:
    """A stable id for an API key value (API Gateway's ids are 10 lower-case characters)."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def _resource_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:6]


def is_text_content_type(content_type: str | None) -> bool:
    """Whether a body of this type travels as text; anything else is base64-encoded binary."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith(("+json", "+xml", "+yaml"))
    )


def _grouped(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Single-value (the last one wins) and multi-value views of repeated names."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _request_time(epoch_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def trace_id(now_s: float | None = None) -> str:
    """An X-Ray trace header value of the shape API Gateway adds."""
    seconds = int(time.time() if now_s is None else now_s)
    return f"Root=1-{seconds:08x}-{secrets.token_hex(12)}"


def build_event(
    request: HttpRequest,
    matched: RouteMatch,
    stage: StageContext,
    *,
    request_id: str,
    epoch_ms: int,
    api_key: str | None = None,
    access_key: str | None = None,
) -> dict[str, Any]:
    """The Lambda proxy integration event (payload format 1.0) for a matched request."""
    headers = list(request.headers)
    names = {name.lower() for name, _ in headers}
    # API Gateway tells the function who called and how, in headers it adds itself.
    for name, value in (
        ("X-Amzn-Trace-Id", trace_id(epoch_ms / 1000)),
        ("X-Forwarded-For", request.source_ip),
        (
            "X-Forwarded-Port",
            stage.domain_name.rpartition(":")[2] if ":" in stage.domain_name else "80",
        ),
        ("X-Forwarded-Proto", "http"),
    ):
        if name.lower() not in names:
            headers.append((name, value))
    single_headers, multi_headers = _grouped(headers)
    query_pairs = parse_qsl(request.query, keep_blank_values=True)
    single_query, multi_query = _grouped(query_pairs)
    body: str | None = None
    encoded = False
    if request.body:
        content_type = request.header("Content-Type")
        if is_text_content_type(content_type):
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                encoded = True
        else:
            encoded = True
        if encoded:
            body = base64.b64encode(request.body).decode("ascii")
    identity: dict[str, Any] = {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "sourceIp": request.source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": request.header("User-Agent"),
        "user": None,
    }
    if api_key is not None:
        identity["apiKey"] = api_key
        identity["apiKeyId"] = api_key_id(api_key)
    if access_key is not None:
        # Local IAM mode: the caller is taken from the signature's credential, not verified.
        identity.update(
            accessKey=access_key,
            accountId=stage.account_id,
            caller=access_key,
            user=access_key,
            userArn=f"arn:aws:iam::{stage.account_id}:user/{access_key}",
        )
    resource = matched.route.path
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": matched.path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": _resource_id(resource),
            "resourcePath": resource,
            "httpMethod": request.method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(10)).decode()[:14] + "=",
            "requestTime": _request_time(epoch_ms),
            "path": f"/{stage.stage}{request.path}",
            "accountId": stage.account_id,
            "protocol": request.protocol,
            "stage": stage.stage,
            "domainPrefix": stage.domain_name.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": epoch_ms,
            "requestId": request_id,
            "identity": identity,
            "domainName": stage.domain_name,
            "apiId": stage.api_id,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


# Responses
@dataclass(frozen=True, slots=True)
class GatewayReply:
    """What the front sends back: status, headers (repeatable, in order) and body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error_type: str | None = None  # x-amzn-ErrorType of a gateway response


def gateway_error(kind: str) -> GatewayReply:
    """A REST API's default gateway response (MISSING_AUTHENTICATION_TOKEN, THROTTLED...)."""
    status, message, error_type = _GATEWAY_ERRORS[kind]
    return GatewayReply(
        status=status,
        headers=(("Content-Type", "application/json"),),
        body=json.dumps({"message": message}).encode(),
        error_type=error_type,
    )


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidProxyResponseError(f"header {name!r} has a {type(value).__name__} value")


def _status_code(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidProxyResponseError("statusCode must be an integer")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 100 <= value <= 599:
        raise InvalidProxyResponseError(f"statusCode {value!r} is not an HTTP status")
    return value


def _merged_headers(single: Any, multi: Any) -> list[tuple[str, str]]:
    """headers and multiValueHeaders as one list; a pair given in both appears once."""
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise InvalidProxyResponseError("headers and multiValueHeaders must be objects")
    pairs: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise InvalidProxyResponseError(f"multiValueHeaders {name!r} is not a list")
        pairs.extend((name, _header_value(name, value)) for value in values)
    seen = {(name.lower(), value) for name, value in pairs}
    for name, value in single.items():
        text = _header_value(name, value)
        if (name.lower(), text) not in seen:
            pairs.append((name, text))
    headers = [
        (f"x-amzn-Remapped-{name}", value) if name.lower() in _REMAPPED_HEADERS else (name, value)
        for name, value in pairs
    ]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return headers


def map_proxy_response(payload: bytes) -> GatewayReply:
    """Turn a function's Lambda proxy response into the HTTP reply API Gateway sends.

    Raises InvalidProxyResponseError for what a REST API calls a malformed proxy response:
    not a JSON object, no valid statusCode, unknown keys, a body that is not a string, headers
    that are not a mapping of scalars, or a base64 body that does not decode.
    """
    try:
        answer = json.loads(payload)
    except ValueError as exc:
        raise InvalidProxyResponseError("the response is not JSON") from exc
    if not isinstance(answer, dict):
        raise InvalidProxyResponseError("the response is not a JSON object")
    unknown = set(answer) - _PROXY_RESPONSE_KEYS
    if unknown:
        raise InvalidProxyResponseError(f"unknown keys {sorted(unknown)}")
    if "statusCode" not in answer:
        raise InvalidProxyResponseError("statusCode is missing")
    status = _status_code(answer["statusCode"])
    headers = _merged_headers(answer.get("headers") or {}, answer.get("multiValueHeaders") or {})
    body = answer.get("body")
    if body is not None and not isinstance(body, str):
        raise InvalidProxyResponseError("body must be a string")
    if answer.get("isBase64Encoded") is True and body:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidProxyResponseError("body is not valid base64") from exc
    else:
        data = (body or "").encode("utf-8")
    return GatewayReply(status=status, headers=tuple(headers), body=data)


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
