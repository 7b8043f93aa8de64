"""API Gateway's REST proxy integration (payload 1.0), without the HTTP: the route table, the
Lambda event of a request, the proxy response mapped back to an answer, and the gateway's own
error answers. The loopback front (localstage.apigw) serves them."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from collections.abc import Sequence

    from localstage.spec import ApiRoute

__all__ = [
    "MAX_REQUEST_BYTES",
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
    "trace_id",
]

MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024  # API Gateway's request payload quota
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
