"""API Gateway front, pure parts: route matching, proxy events, response mapping, error shapes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from localstage.apigw_proxy import (
    HttpRequest,
    InvalidProxyResponseError,
    RouteMatch,
    RouteTable,
    StageContext,
    api_key_id,
    build_event,
    gateway_error,
    is_text_content_type,
    map_proxy_response,
)
from localstage.spec import ApiRoute

EVENTS = Path(__file__).parents[3] / "events"
STAGE = StageContext(stage="local", api_id="localapi01", account_id="123456789012")


def _route(path: str, method: str = "GET", function: str = "ApiFunction") -> ApiRoute:
    return ApiRoute(function=function, method=method, path=path, api_key_required=False)


def _request(
    path: str = "/health",
    query: str = "",
    headers: tuple[tuple[str, str], ...] = (("User-Agent", "curl/8.5.0"),),
    body: bytes = b"",
    method: str = "GET",
) -> HttpRequest:
    return HttpRequest(method=method, path=path, query=query, headers=headers, body=body)


def _event(request: HttpRequest, route: ApiRoute, **kwargs: Any) -> dict[str, Any]:
    matched = RouteTable([route]).match(request.method, request.path)
    assert matched is not None
    return build_event(
        request, matched, STAGE, request_id="req-1", epoch_ms=1_795_338_902_000, **kwargs
    )


# Route matching
TABLE = RouteTable(
    [
        _route("/vulnerabilities"),
        _route("/vulnerabilities/{id}"),
        _route("/vulnerabilities/summary"),
        _route("/sync", "POST"),
        _route("/sync/runs/{id}"),
        _route("/files/{proxy+}", "ANY", function="FilesFunction"),
        _route("/files/readme", "GET", function="ReadmeFunction"),
        _route("/items/{id}", "ANY"),
        _route("/items/{id}", "DELETE", function="DeleteFunction"),
        _route("/"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "resource", "parameters"),
    [
        ("GET", "/vulnerabilities/summary", "/vulnerabilities/summary", None),
        ("GET", "/vulnerabilities/V-42", "/vulnerabilities/{id}", {"id": "V-42"}),
        ("GET", "/vulnerabilities/", "/vulnerabilities", None),
        ("GET", "/sync/runs/run-7", "/sync/runs/{id}", {"id": "run-7"}),
        ("PUT", "/files/a/b/c.txt", "/files/{proxy+}", {"proxy": "a/b/c.txt"}),
        ("GET", "/files/readme", "/files/readme", None),
        ("GET", "/", "/", None),
        ("GET", "/vulnerabilities/a%20b", "/vulnerabilities/{id}", {"id": "a%20b"}),
    ],
)
def test_route_matching_prefers_literals_then_parameters_then_greedy(
    method: str, path: str, resource: str, parameters: dict[str, str] | None
) -> None:
    # given the API's routes
    # when a request path is resolved
    matched = TABLE.match(method, path)

    # then the most specific resource answers, with its path parameters (still URL-encoded)
    assert matched is not None
    assert matched.route.path == resource
    assert matched.path_parameters == parameters


def test_exact_method_beats_any_on_the_same_resource() -> None:
    # given a resource with ANY and DELETE
    # when DELETE and GET arrive
    delete = TABLE.match("DELETE", "/items/9")
    get = TABLE.match("GET", "/items/9")

    # then DELETE goes to its own method and GET falls to ANY
    assert delete is not None
    assert get is not None
    assert delete.route.function == "DeleteFunction"
    assert get.route.method == "ANY"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing-here"),
        ("GET", "/files"),  # a greedy variable needs at least one segment
        ("GET", "/vulnerabilities/V-1/extra"),
        ("DELETE", "/vulnerabilities/V-1"),  # known path, method not defined
        ("GET", "/sync"),
    ],
)
def test_unknown_path_or_method_has_no_route(method: str, path: str) -> None:
    # given the API's routes
    # when a path or method the API does not define is requested
    # then nothing matches (the front answers 403 Missing Authentication Token)
    assert TABLE.match(method, path) is None


def test_method_on_the_most_specific_resource_does_not_fall_back_to_a_greedy_one() -> None:
    # given /files/readme (GET) beside /files/{proxy+} (ANY)
    # when POST /files/readme arrives
    # then, as in a REST API, the resource is chosen first and it has no POST
    assert TABLE.match("POST", "/files/readme") is None


# Events
def test_event_has_the_fields_of_a_real_rest_api_event() -> None:
    # given the recorded API Gateway event in events/
    recorded = json.loads((EVENTS / "api_get_health.json").read_text())

    # when the front builds the event for the same request
    event = _event(_request(), _route("/health"))

    # then the event and its request context carry the same fields
    assert set(event) == set(recorded)
    assert set(event["requestContext"]) == set(recorded["requestContext"])
    assert set(event["requestContext"]["identity"]) - {"apiKey", "apiKeyId"} <= set(
        recorded["requestContext"]["identity"]
    )
    assert event["resource"] == "/health"
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["path"] == "/local/health"
    assert context["stage"] == "local"
    assert context["requestId"] == "req-1"
    assert context["requestTimeEpoch"] == 1_795_338_902_000
    assert context["requestTime"] == "22/Nov/2026:09:15:02 +0000"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "curl/8.5.0"
    assert "apiKey" not in context["identity"]


def test_event_carries_path_query_and_repeated_headers() -> None:
    # given a request with a path parameter, a repeated query parameter and a repeated header
    request = _request(
        path="/vulnerabilities/V-42",
        query="severity=HIGH&severity=CRITICAL&limit=5&flag",
        headers=(("Accept", "text/plain"), ("X-Tag", "one"), ("X-Tag", "two")),
    )

    # when the event is built
    event = _event(request, _route("/vulnerabilities/{id}"))

    # then single values keep the last one and multi values keep them all
    assert event["resource"] == "/vulnerabilities/{id}"
    assert event["path"] == "/vulnerabilities/V-42"
    assert event["pathParameters"] == {"id": "V-42"}
    assert event["queryStringParameters"] == {"severity": "CRITICAL", "limit": "5", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {
        "severity": ["HIGH", "CRITICAL"],
        "limit": ["5"],
        "flag": [""],
    }
    assert event["headers"]["X-Tag"] == "two"
    assert event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["requestContext"]["resourcePath"] == "/vulnerabilities/{id}"
    assert event["requestContext"]["path"] == "/local/vulnerabilities/V-42"


def test_event_names_the_api_key_used() -> None:
    # given a request on a key-required route
    # when the event is built with the key the caller sent
    event = _event(_request(), _route("/health"), api_key="local-key-1")

    # then the identity carries the key and its id
    identity = event["requestContext"]["identity"]
    assert identity["apiKey"] == "local-key-1"
    assert identity["apiKeyId"] == api_key_id("local-key-1")
    assert len(identity["apiKeyId"]) == 10


def test_text_body_travels_as_text_and_binary_as_base64() -> None:
    # given a JSON body and a PNG body
    text = _request(
        method="POST",
        body=b'{"run": true}',
        headers=(("Content-Type", "application/json; charset=utf-8"),),
    )
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    binary = _request(method="POST", body=png, headers=(("Content-Type", "image/png"),))

    # when events are built
    text_event = _event(text, _route("/health", "POST"))
    binary_event = _event(binary, _route("/health", "POST"))

    # then JSON is a string and the image is base64 with the flag set
    assert (text_event["body"], text_event["isBase64Encoded"]) == ('{"run": true}', False)
    assert binary_event["isBase64Encoded"] is True
    assert base64.b64decode(binary_event["body"]) == png


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        (None, True),
        ("text/csv", True),
        ("application/json", True),
        ("application/problem+json", True),
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", False),
        ("image/png", False),
        ("application/pdf", False),
    ],
)
def test_content_types_are_sorted_into_text_and_binary(
    content_type: str | None, text: bool
) -> None:
    assert is_text_content_type(content_type) is text


# Response mapping
def test_proxy_response_maps_status_headers_and_body() -> None:
    # given a proxy response with single and multi-value headers
    payload = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Single": "1", "Set-Cookie": "a=1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": '{"ok": true}',
        "isBase64Encoded": False,
    }

    # when it is mapped
    reply = map_proxy_response(json.dumps(payload).encode())

    # then both header maps are merged, a pair given twice appears once
    assert reply.status == 201
    assert reply.body == b'{"ok": true}'
    assert [v for k, v in reply.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert ("X-Single", "1") in reply.headers
    assert ("Content-Type", "application/json") in reply.headers


def test_proxy_response_defaults_and_remapped_headers() -> None:
    # given a minimal response that sets a header API Gateway keeps for itself
    payload = {"statusCode": "204", "headers": {"Content-Length": "99", "Server": "mine"}}

    # when it is mapped
    reply = map_proxy_response(json.dumps(payload).encode())

    # then the body is empty, JSON is the default type and the header comes back renamed
    assert reply.status == 204
    assert reply.body == b""
    assert ("Content-Type", "application/json") in reply.headers
    assert ("x-amzn-Remapped-Content-Length", "99") in reply.headers
    assert ("x-amzn-Remapped-Server", "mine") in reply.headers
    assert all(k.lower() != "content-length" for k, _ in reply.headers)


def test_base64_proxy_response_is_decoded_to_bytes() -> None:
    # given a binary response
    data = bytes(range(256))
    payload = {"statusCode": 200, "body": base64.b64encode(data).decode(), "isBase64Encoded": True}

    # when it is mapped
    # then the client gets the raw bytes
    assert map_proxy_response(json.dumps(payload).encode()).body == data


@pytest.mark.parametrize(
    "payload",
    [
        b"null",
        b"not json",
        b'"a string"',
        b'{"body": "no status"}',
        b'{"statusCode": "abc"}',
        b'{"statusCode": 700}',
        b'{"statusCode": true}',
        b'{"statusCode": 200, "body": {"not": "a string"}}',
        b'{"statusCode": 200, "headers": ["x"]}',
        b'{"statusCode": 200, "multiValueHeaders": {"X": "not-a-list"}}',
        b'{"statusCode": 200, "headers": {"X": {"nested": 1}}}',
        b'{"statusCode": 200, "extra": 1}',
        b'{"statusCode": 200, "body": "***", "isBase64Encoded": true}',
    ],
)
def test_malformed_proxy_responses_are_rejected(payload: bytes) -> None:
    # given something that is not a valid Lambda proxy response
    # when it is mapped
    # then it is refused (the front turns that into a 502)
    with pytest.raises(InvalidProxyResponseError):
        map_proxy_response(payload)


@pytest.mark.parametrize(
    ("kind", "status", "message", "error_type"),
    [
        (
            "MISSING_AUTHENTICATION_TOKEN",
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        ),
        ("INVALID_API_KEY", 403, "Forbidden", "ForbiddenException"),
        ("THROTTLED", 429, "Too Many Requests", "TooManyRequestsException"),
        ("INTEGRATION_FAILURE", 502, "Internal server error", "InternalServerErrorException"),
        ("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out", "InternalServerErrorException"),
        ("REQUEST_TOO_LARGE", 413, "Request Too Long", "RequestTooLargeException"),
    ],
)
def test_gateway_errors_have_api_gateway_shapes(
    kind: str, status: int, message: str, error_type: str
) -> None:
    # given a gateway response type
    # when its reply is built
    reply = gateway_error(kind)

    # then status, JSON message and x-amzn-ErrorType are API Gateway's defaults
    assert reply.status == status
    assert json.loads(reply.body) == {"message": message}
    assert reply.error_type == error_type
    assert ("Content-Type", "application/json") in reply.headers


def test_route_match_is_a_plain_value() -> None:
    # given two matches of the same request
    # then they compare equal (frozen values, safe to share across threads)
    first = TABLE.match("GET", "/vulnerabilities/V-1")
    assert first == RouteMatch(_route("/vulnerabilities/{id}"), {"id": "V-1"})
