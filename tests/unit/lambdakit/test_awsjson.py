"""The botocore-free JSON client against botocore as the oracle, and its failure behaviour.

Every request the API's read path makes is signed by both clients for the same time and
credentials and sent to a loopback stand-in; what reaches the wire must match header for header.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import botocore.auth
import botocore.config
import botocore.session
import pytest
from fakes.aws_json_server import Answer, ScriptedServer, scripted_server

from lambdakit.awsjson import (
    AwsJsonClient,
    AwsServiceError,
    AwsTransportError,
    ConfigurationError,
    LambdaCredentials,
    resolve_endpoint,
)
from lambdakit.retry import Deadline
from vulnstats.dynamo import DynamoStore
from vulnstats.dynamo_http import DynamoHttpClient
from vulnstats.errors import StorageError
from vulnstats.models import AssetType, Severity
from vulnstats.queries import DynamoReader, FindingFilter

if TYPE_CHECKING:
    from collections.abc import Iterator

NOW = datetime(2026, 11, 22, 6, 0, 7, tzinfo=UTC)
CREDS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalr/K7MDENG+bPxRfiCY"}
TOKEN = {"AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQ"}
# Headers that legitimately differ: who is calling, and a random id per call.
UNCOMPARED = {"user-agent", "amz-sdk-invocation-id", "accept-encoding", "connection"}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


class _Recorder:
    """A DynamoDB client that records what the read path asks for and answers emptily."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_item(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("GetItem", params))
        return {}

    def query(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("Query", params))
        return {"Items": []}


def _api_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every kind of request the API's routes make, from the real read path."""
    recorder = _Recorder()
    reader = DynamoReader(DynamoStore("state-table", client=recorder))  # type: ignore[arg-type]
    reader.last_complete()
    reader.get_snapshot()
    reader.snapshot_history(30, date(2026, 11, 22))
    reader.latest_runs(20)
    reader.get_run("20261122T060000Z-abc")
    reader.lock_holder(NOW)
    reader.get_finding("vuln-1", NOW)
    for filters in (
        FindingFilter(),
        FindingFilter(severity=Severity.CRITICAL, overdue=True),
        FindingFilter(due_within_days=14, asset_type=AssetType.SERVER, fixable=True),
        FindingFilter(integration_id="qualys", include_deactivated=True),
    ):
        reader.list_findings(filters, limit=50, cursor=None, now=NOW)
    return recorder.calls


API_REQUESTS = _api_requests()


def _environ(server: ScriptedServer, *, token: bool) -> dict[str, str]:
    env = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL_DYNAMODB": server.url, **CREDS}
    return env | TOKEN if token else env


def _ours(environ: dict[str, str], **kwargs: Any) -> AwsJsonClient:
    return AwsJsonClient(
        service="dynamodb",
        target_prefix="DynamoDB_20120810",
        endpoint=resolve_endpoint("dynamodb", environ),
        credentials=LambdaCredentials(environ),
        clock=NOW.timestamp,
        **kwargs,
    )


def _botocore(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    # Only the variables of the case: no profile file or ambient setting may steer the oracle.
    for name in (
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_PROFILE",
        "AWS_USE_DUALSTACK_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})
    return botocore.session.Session().create_client("dynamodb", config=config)


@pytest.mark.parametrize("token", [True, False], ids=["session-token", "long-term-key"])
def test_every_api_request_reaches_the_wire_exactly_as_botocore_sends_it(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, token: bool
) -> None:
    environ = _environ(server, token=token)
    oracle = _botocore(environ, monkeypatch)
    ours = _ours(environ)

    for operation, params in API_REQUESTS:
        getattr(oracle, {"GetItem": "get_item", "Query": "query"}[operation])(**params)
        ours.call(operation, params)

    assert len(server.seen) == 2 * len(API_REQUESTS)
    for theirs, mine in zip(server.seen[::2], server.seen[1::2], strict=True):
        assert mine.body == theirs.body
        assert mine.path == theirs.path
        expected = {k: v for k, v in theirs.headers.items() if k not in UNCOMPARED}
        assert {k: v for k, v in mine.headers.items() if k not in UNCOMPARED} == expected
        assert mine.headers["amz-sdk-invocation-id"] != theirs.headers["amz-sdk-invocation-id"]


REGIONS = [
    "us-east-1",
    "eu-west-1",
    "ap-southeast-7",
    "mx-central-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "eu-isoe-west-1",
    "us-isof-south-1",
]
OVERRIDES = [
    {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
    {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000", "AWS_ENDPOINT_URL": "http://x:1"},
    {"AWS_ENDPOINT_URL_DYNAMODB": "https://localhost", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "1"},
    {"AWS_ENDPOINT_URL": "https://localhost", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "TRUE"},
    {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9/prefix"},
]


@pytest.mark.parametrize(
    "environ",
    [{"AWS_DEFAULT_REGION": region} for region in REGIONS]
    + [{"AWS_DEFAULT_REGION": "us-east-1", **override} for override in OVERRIDES],
    ids=[
        *REGIONS,
        "global-url",
        "service-url-wins",
        "ignore-1-is-not-true",
        "ignore-true",
        "url-with-path",
    ],
)
def test_the_endpoint_is_the_one_botocore_resolves(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    oracle = _botocore(environ | CREDS, monkeypatch)

    endpoint = resolve_endpoint("dynamodb", environ)

    path = "" if endpoint.path == "/" else endpoint.path
    assert f"{endpoint.scheme}://{endpoint.host_header}{path}" == oracle.meta.endpoint_url
    assert endpoint.region == oracle.meta.region_name


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "AWS_DEFAULT_REGION: missing"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_USE_FIPS_ENDPOINT": "true"}, "FIPS"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "ftp://h"}, "AWS_ENDPOINT_URL"),
        ({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://h/?a=1"}, "query string"),
    ],
)
def test_an_endpoint_the_client_cannot_honour_is_refused_by_name(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        resolve_endpoint("dynamodb", environ)


# ----- credentials -----

CONTAINER_ANSWER = {
    "AccessKeyId": "ASIACONTAINER",
    "SecretAccessKey": "container-secret",
    "Token": "container-token",
    "Expiration": "2026-11-22T12:00:00Z",
}


def test_without_key_variables_credentials_come_from_the_container_endpoint(
    server: ScriptedServer, tmp_path: Any
) -> None:
    server.default = Answer.ok(CONTAINER_ANSWER)
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/2018-06-01/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "env-token",
    }
    clock = [NOW.timestamp()]
    credentials = LambdaCredentials(environ, clock=lambda: clock[0])

    first = credentials.get()
    again = credentials.get()
    clock[0] = datetime(2026, 11, 22, 11, 50, tzinfo=UTC).timestamp()  # 10 min before expiry
    credentials.get()
    from_file = LambdaCredentials(
        environ | {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
    ).get()

    assert (first.access_key, first.secret_key, first.token) == (
        "ASIACONTAINER",
        "container-secret",
        "container-token",
    )
    assert again is first
    assert [seen.path for seen in server.seen] == ["/2018-06-01/credentials"] * 3
    assert [seen.headers["authorization"] for seen in server.seen] == [
        "env-token",
        "env-token",
        "file-token",
    ]
    assert from_file.access_key == "ASIACONTAINER"


def test_the_environment_keys_win_over_the_container_endpoint() -> None:
    environ = CREDS | TOKEN | {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/c"}
    got = LambdaCredentials(environ).get()
    assert (got.access_key, got.token) == ("AKIDEXAMPLE", TOKEN["AWS_SESSION_TOKEN"])


@pytest.mark.parametrize(
    ("answers", "named"),
    [
        ([], "no AWS credentials"),
        ([Answer(500, b"down")] * 3, "HTTP 500"),
        ([Answer.ok({"AccessKeyId": "A"})], "malformed answer"),
    ],
    ids=["none", "endpoint-down", "malformed"],
)
def test_missing_or_broken_credentials_give_one_clear_error(
    server: ScriptedServer, answers: list[Answer], named: str
) -> None:
    server.script = list(answers)
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/c"} if answers else {}
    with pytest.raises(ConfigurationError, match=named):
        LambdaCredentials(environ).get()


# ----- errors and retries -----


class _Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(server: ScriptedServer, **kwargs: Any) -> tuple[AwsJsonClient, _Sleeps]:
    sleeps = _Sleeps()
    environ = _environ(server, token=True)
    client = _ours(environ, sleep=sleeps, random_fn=lambda: 0.5, transient_base=0.025, **kwargs)
    return client, sleeps


def test_throttling_is_retried_with_botocore_backoff_then_answers(server: ScriptedServer) -> None:
    throttled = Answer.error(400, "ProvisionedThroughputExceededException")
    server.script = [throttled, throttled, Answer.ok({"Item": {"pk": {"S": "a"}}})]
    client, sleeps = _client(server)

    answer = client.call("GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}})

    assert answer == {"Item": {"pk": {"S": "a"}}}
    assert [s.headers["amz-sdk-request"] for s in server.seen] == [
        "attempt=1",
        "attempt=2; max=3",
        "attempt=3; max=3",
    ]
    assert len({s.headers["amz-sdk-invocation-id"] for s in server.seen}) == 1
    # throttling: rand x 1 s x 2^n (rand = 0.5)
    assert sleeps == [0.5, 1.0]


def test_server_errors_are_retried_three_times_then_the_last_error_is_raised(
    server: ScriptedServer,
) -> None:
    server.default = Answer.error(500, "InternalServerError", "boom")
    client, sleeps = _client(server)

    with pytest.raises(AwsServiceError) as caught:
        client.call("Query", {"TableName": "t"})

    assert len(server.seen) == 3
    assert str(caught.value) == (
        "An error occurred (InternalServerError) when calling the Query operation: boom"
    )
    assert sleeps == [0.0125, 0.025]  # DynamoDB's transient base 25 ms x 2^n, rand = 0.5


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer.error(400, "ResourceNotFoundException", "Requested resource not found"), None),
        (Answer.error(400, "ExpiredTokenException", "The security token has expired"), None),
        (Answer.error(400, "ValidationException", "bad key"), None),
        (Answer(200, b"<html>not json</html>"), "malformed answer"),
        (Answer(502, b"<html>Bad Gateway</html>"), None),
    ],
    ids=["unknown-table", "expired-token", "validation", "malformed", "non-json-502"],
)
def test_a_failed_call_raises_one_clear_error(
    server: ScriptedServer, answer: Answer, error: str | None
) -> None:
    server.default = answer
    client, _ = _client(server)

    with pytest.raises((AwsServiceError, AwsTransportError)) as caught:
        client.call("GetItem", {"TableName": "t"})

    if error is not None:
        assert error in str(caught.value)
        assert len(server.seen) == 1
    else:
        assert isinstance(caught.value, AwsServiceError)
        expected_calls = 3 if answer.status >= 500 else 1
        assert len(server.seen) == expected_calls
        code = caught.value.code
        sent = "502" if answer.status == 502 else json.loads(answer.body)["__type"].split("#")[1]
        assert code == sent


def test_a_silent_server_hits_the_read_timeout_and_never_hangs(server: ScriptedServer) -> None:
    server.default = Answer(hang=True)
    client, _ = _client(server, read_timeout=0.2, max_attempts=2)

    with pytest.raises(AwsTransportError, match=r"TimeoutError|timed out") as caught:
        client.call("GetItem", {"TableName": "t"})

    assert caught.value.retryable
    assert len(server.seen) == 2


def test_a_closed_port_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = CREDS | {"AWS_DEFAULT_REGION": "eu-west-1"}
    environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    client = _ours(environ, sleep=lambda _: None, max_attempts=2)

    with pytest.raises(AwsTransportError, match=r"no answer from http://127\.0\.0\.1"):
        client.call("GetItem", {"TableName": "t"})


def test_a_retry_that_cannot_fit_before_the_deadline_is_not_made(server: ScriptedServer) -> None:
    server.default = Answer(
        400,
        Answer.error(400, "ThrottlingException").body,
        headers=(("x-amz-retry-after", "4000"),),
    )
    client, sleeps = _client(server)
    client.deadline = Deadline.after(1.0)

    with pytest.raises(AwsServiceError, match="ThrottlingException"):
        client.call("GetItem", {"TableName": "t"})

    assert len(server.seen) == 1
    assert sleeps == []


def test_calls_share_one_kept_alive_connection(server: ScriptedServer) -> None:
    client, _ = _client(server)
    for _ in range(3):
        client.call("GetItem", {"TableName": "t"})
    assert len({seen.peer for seen in server.seen}) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry(
    server: ScriptedServer,
) -> None:
    server.script = [Answer(close=True)]
    client, sleeps = _client(server)

    client.call("GetItem", {"TableName": "t"})
    assert server.closed.wait(5)  # the server has closed its end before the next call
    client.call("GetItem", {"TableName": "t"})

    assert len(server.seen) == 2
    assert server.seen[0].peer != server.seen[1].peer
    assert sleeps == []


def test_the_dynamodb_adapter_reports_storage_errors_naming_table_and_code(
    server: ScriptedServer,
) -> None:
    server.default = Answer.error(400, "ResourceNotFoundException", "Requested resource not found")
    client = DynamoHttpClient.from_env(
        connect_timeout=1.0, read_timeout=1.0, environ=_environ(server, token=False)
    )

    with pytest.raises(StorageError) as caught:
        client.get_item(TableName="missing-table", Key={"pk": {"S": "a"}})

    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.resource == "missing-table"
    assert str(caught.value) == (
        "DynamoDB table missing-table: GetItem failed: An error occurred "
        "(ResourceNotFoundException) when calling the GetItem operation: "
        "Requested resource not found"
    )
