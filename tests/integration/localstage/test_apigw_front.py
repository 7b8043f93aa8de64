"""The API Gateway front on loopback, in front of the local Lambda runtime, called with requests."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from localstage.apigw import ApiFront, start_api_front
from localstage.runtime import LocalRuntime
from localstage.spec import ApiRoute, FunctionSpec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("apigw")]

HANDLERS = Path(__file__).parent / "handlers"
REGION = "eu-west-1"
API_KEY = "local-test-key-0123456789"
TIMEOUT = 30


def _spec(logical_id: str, name: str, function: str, **overrides: Any) -> FunctionSpec:
    values: dict[str, Any] = {
        "logical_id": logical_id,
        "function_name": name,
        "code_dir": HANDLERS / "gw_echo",
        "handler": f"gw_echo_fn.handler.{function}",
        "runtime": "python3.13",
        "architecture": "x86_64",
        "memory_mb": 128,
        "timeout_s": 10,
        "reserved_concurrency": None,
        "environment": {},
        "layer_dirs": (),
    }
    values.update(overrides)
    return FunctionSpec(**values)


FUNCTIONS = [
    _spec("EchoFunction", "gw-echo", "echo"),
    _spec("BinaryFunction", "gw-binary", "binary"),
    _spec("FailingFunction", "gw-failing", "failing"),
    _spec("InvalidFunction", "gw-invalid", "invalid"),
    _spec("HoldFunction", "gw-hold", "hold", reserved_concurrency=1),
    _spec("SlowFunction", "gw-slow", "hold"),
]
NAMES = {spec.logical_id: spec.function_name for spec in FUNCTIONS}
ROUTES = [
    ApiRoute("EchoFunction", "GET", "/items/{id}", api_key_required=False),
    ApiRoute("EchoFunction", "ANY", "/files/{proxy+}", api_key_required=False),
    ApiRoute("EchoFunction", "GET", "/secure", api_key_required=True),
    ApiRoute("BinaryFunction", "POST", "/binary", api_key_required=False),
    ApiRoute("FailingFunction", "GET", "/fail", api_key_required=False),
    ApiRoute("InvalidFunction", "GET", "/invalid", api_key_required=False),
    ApiRoute("HoldFunction", "GET", "/hold", api_key_required=False),
    ApiRoute("SlowFunction", "GET", "/slow", api_key_required=False),
]


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    local = LocalRuntime(
        {spec.logical_id: spec for spec in FUNCTIONS},
        base_env={"AWS_REGION": REGION},
        event_retry_delay_s=0.0,
    )
    yield local
    local.shutdown()


@pytest.fixture(scope="module")
def front(runtime: LocalRuntime) -> Iterator[ApiFront]:
    api = start_api_front(ROUTES, runtime, function_names=NAMES, api_keys={API_KEY}, port=0)
    yield api
    api.close()


def _wait_until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.01)
    return bool(condition())


def test_path_query_and_headers_reach_the_function_and_its_response_comes_back(
    front: ApiFront,
) -> None:
    # given a route with a path parameter
    # when it is called with a repeated query parameter and a custom header
    answer = requests.get(
        f"{front.url}/items/V-42?severity=HIGH&severity=LOW&limit=5",
        headers={"X-Custom": "hello"},
        timeout=TIMEOUT,
    )

    # then the function saw a REST proxy event for the route
    assert answer.status_code == 201
    event = answer.json()["event"]
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/V-42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "V-42"}
    assert event["queryStringParameters"] == {"severity": "LOW", "limit": "5"}
    assert event["multiValueQueryStringParameters"]["severity"] == ["HIGH", "LOW"]
    assert event["headers"]["X-Custom"] == "hello"
    assert event["multiValueHeaders"]["X-Custom"] == ["hello"]
    assert event["body"] is None
    context = event["requestContext"]
    assert context["path"] == "/local/items/V-42"
    assert context["stage"] == "local"
    assert context["resourcePath"] == "/items/{id}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["accountId"] == "123456789012"
    # and the proxy response was mapped back to HTTP, with API Gateway's headers
    assert answer.headers["X-Echo"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert answer.headers["x-amzn-RequestId"] == context["requestId"]
    assert answer.headers["X-Amzn-Trace-Id"].startswith("Root=1-")


def test_greedy_path_variable_takes_the_rest_of_the_path(front: ApiFront) -> None:
    # given an ANY /files/{proxy+} route
    # when a nested path is PUT with a JSON body
    answer = requests.put(f"{front.url}/files/reports/2026/q4.json", json={"a": 1}, timeout=TIMEOUT)

    # then the greedy parameter holds every remaining segment and the body arrives as text
    event = answer.json()["event"]
    assert event["pathParameters"] == {"proxy": "reports/2026/q4.json"}
    assert event["httpMethod"] == "PUT"
    assert event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False


def test_key_required_route_refuses_calls_without_a_valid_key(front: ApiFront) -> None:
    # given a route that requires an API key
    # when it is called without a key, with a wrong key and with the right key
    missing = requests.get(f"{front.url}/secure", timeout=TIMEOUT)
    wrong = requests.get(f"{front.url}/secure", headers={"x-api-key": "nope"}, timeout=TIMEOUT)
    right = requests.get(f"{front.url}/secure", headers={"X-API-Key": API_KEY}, timeout=TIMEOUT)

    # then only the right key gets through, and the function learns which key was used
    assert (missing.status_code, missing.json()) == (403, {"message": "Forbidden"})
    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})
    assert missing.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert right.status_code == 201
    assert right.json()["event"]["requestContext"]["identity"]["apiKey"] == API_KEY


def test_unknown_route_and_undefined_method_answer_missing_authentication_token(
    front: ApiFront,
) -> None:
    # given the API's routes
    # when a path the API lacks and a method a known path lacks are requested
    unknown = requests.get(f"{front.url}/no/such/route", timeout=TIMEOUT)
    wrong_method = requests.delete(f"{front.url}/items/V-42", timeout=TIMEOUT)

    # then both get a REST API's 403 Missing Authentication Token
    for answer in (unknown, wrong_method):
        assert answer.status_code == 403
        assert answer.json() == {"message": "Missing Authentication Token"}
        assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


@pytest.mark.parametrize(
    ("method", "path"),
    [("TRACE", "/items/V-42"), ("TRACE", "/files/a/b"), ("CONNECT", "/secure"), ("FOO", "/")],
)
def test_a_method_no_rest_api_route_has_answers_missing_authentication_token_in_json(
    front: ApiFront, method: str, path: str
) -> None:
    # given routes for GET, POST and ANY (which stands for the seven usual methods only)
    # when a method outside them is requested
    answer = requests.request(method, f"{front.url}{path}", timeout=TIMEOUT)

    # then it is API Gateway's JSON 403, never the standard library's HTML 501
    assert answer.status_code == 403
    assert answer.json() == {"message": "Missing Authentication Token"}
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def _raw_exchange(front: ApiFront, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Send bytes as they are (requests would fix them) and parse the one answer."""
    with socket.create_connection(("127.0.0.1", front.port), timeout=TIMEOUT) as conn:
        conn.sendall(request)
        reader = conn.makefile("rb")
        status = int(reader.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := reader.readline().strip()) != b"":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers["content-length"]))
    return status, headers, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        # a URL over the REST API quota of 10240 characters
        (
            b"GET /items/" + b"v" * 10240 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "Request URI too long",
        ),
        # a request line past what the standard library reads (it would answer HTML 414)
        (b"GET /?q=" + b"v" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "Request URI too long"),
        # header names and values over the 10240-byte quota
        (
            b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 10300 + b"\r\n\r\n",
            431,
            "Request Header Fields Too Large",
        ),
        # more header lines than the standard library parses
        (
            b"GET /items/1 HTTP/1.1\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(150))
            + b"\r\n",
            431,
            "Request Header Fields Too Large",
        ),
        (b"GET /items/1 HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "Bad Request"),
        (b"POST /binary HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400, "Bad Request"),
        (
            b"POST /binary HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "Bad Request",
        ),
        (b"THIS IS NOT HTTP\r\n\r\n", 400, "Bad Request"),
    ],
    ids=[
        "url-quota",
        "line-limit",
        "header-quota",
        "header-count",
        "neg-length",
        "bad-length",
        "bad-chunk",
        "garbage",
    ],
)
def test_requests_over_quota_or_malformed_get_a_json_gateway_response(
    front: ApiFront, request_bytes: bytes, status: int, message: str
) -> None:
    # given a request API Gateway would refuse before any integration
    # when it is sent as raw bytes
    answer_status, headers, body = _raw_exchange(front, request_bytes)

    # then the answer is the gateway's JSON shape, not an HTML page, and the value is not echoed
    assert answer_status == status
    assert body == {"message": message}
    assert headers["content-type"] == "application/json"
    assert "x-amzn-errortype" in headers
    assert "x-amzn-requestid" in headers


def test_the_front_keeps_serving_after_refusals(front: ApiFront) -> None:
    # given a refused request
    _raw_exchange(front, b"THIS IS NOT HTTP\r\n\r\n")

    # when a valid request follows
    answer = requests.get(f"{front.url}/items/V-1", timeout=TIMEOUT)

    # then it reaches the function as usual
    assert answer.status_code == 201
    assert answer.json()["event"]["pathParameters"] == {"id": "V-1"}


@pytest.mark.parametrize("path", ["/fail", "/invalid"])
def test_function_error_or_malformed_proxy_response_is_a_502(front: ApiFront, path: str) -> None:
    # given a function that raises, and one that answers without a statusCode
    # when each is called
    answer = requests.get(f"{front.url}{path}", timeout=TIMEOUT)

    # then the client gets API Gateway's 502
    assert answer.status_code == 502
    assert answer.json() == {"message": "Internal server error"}


def test_call_beyond_reserved_concurrency_is_throttled_with_429(
    front: ApiFront, runtime: LocalRuntime, tmp_path: Path
) -> None:
    # given a function with reserved concurrency 1, kept busy by a first call
    release = tmp_path / "release"
    url = f"{front.url}/hold"
    first: list[requests.Response] = []
    busy = threading.Thread(
        target=lambda: first.append(
            requests.get(url, params={"release": str(release)}, timeout=TIMEOUT)
        )
    )
    busy.start()
    assert _wait_until(lambda: runtime.concurrency("gw-hold") >= 1)

    # when a second call arrives
    second = requests.get(url, params={"release": str(release)}, timeout=TIMEOUT)

    # then it is throttled as API Gateway throttles, and the first one completes
    release.touch()
    busy.join(timeout=TIMEOUT)
    assert (second.status_code, second.json()) == (429, {"message": "Too Many Requests"})
    assert [answer.status_code for answer in first] == [200]


def test_binary_body_round_trips_unchanged(front: ApiFront) -> None:
    # given bytes that are not text
    data = bytes(range(256)) * 64

    # when they are posted as application/octet-stream to a function that returns them as binary
    answer = requests.post(
        f"{front.url}/binary",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )

    # then the same bytes come back
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.content == data


def test_request_over_ten_megabytes_is_refused_with_413(front: ApiFront) -> None:
    # given a body one byte over API Gateway's 10 MB quota
    body = b"x" * (10 * 1024 * 1024 + 1)

    # when it is posted
    answer = requests.post(f"{front.url}/binary", data=body, timeout=TIMEOUT)

    # then the front refuses it without invoking the function
    assert answer.status_code == 413
    assert answer.json() == {"message": "Request Too Long"}


def test_function_slower_than_the_integration_timeout_gets_504(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    # given a front whose integration timeout (29 s on AWS) is half a second
    release = tmp_path / "release"
    with start_api_front(
        ROUTES,
        runtime,
        function_names=NAMES,
        api_keys=(),
        port=0,
        integration_timeout_s=0.5,
    ) as quick:
        # when a function holds on longer than that
        answer = requests.get(
            f"{quick.url}/slow", params={"release": str(release)}, timeout=TIMEOUT
        )
    release.touch()

    # then the client gets API Gateway's 504 while the function runs on
    assert answer.status_code == 504
    assert answer.json() == {"message": "Endpoint request timed out"}


def test_binary_body_is_base64_in_the_event(front: ApiFront) -> None:
    # given an image body
    png = b"\x89PNG\r\n\x1a\n" + bytes(16)

    # when it is sent to the echo function
    answer = requests.put(
        f"{front.url}/files/logo.png",
        data=png,
        headers={"Content-Type": "image/png"},
        timeout=TIMEOUT,
    )

    # then the event carries it base64-encoded
    event = answer.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == png


def test_iam_mode_requires_a_sigv4_authorization_header(runtime: LocalRuntime) -> None:
    # given a front in IAM mode with an AWS_IAM route
    routes = [ApiRoute("EchoFunction", "GET", "/private", api_key_required=False, iam_auth=True)]
    signed = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIALOCALEXAMPLE/20261122/eu-west-1/"
        "execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc123",
    }
    with start_api_front(
        routes, runtime, function_names=NAMES, api_keys=(), port=0, iam_mode=True
    ) as iam:
        # when it is called unsigned, then signed
        unsigned = requests.get(f"{iam.url}/private", timeout=TIMEOUT)
        answer = requests.get(f"{iam.url}/private", headers=signed, timeout=TIMEOUT)

    # then the unsigned call is refused as API Gateway refuses it, and the signed caller is known
    assert (unsigned.status_code, unsigned.json()) == (
        403,
        {"message": "Missing Authentication Token"},
    )
    assert answer.status_code == 201
    identity = answer.json()["event"]["requestContext"]["identity"]
    assert identity["accessKey"] == "AKIALOCALEXAMPLE"
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/AKIALOCALEXAMPLE"
