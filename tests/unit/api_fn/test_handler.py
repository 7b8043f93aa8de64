"""The handler module as Lambda loads it: lean imports, one client made at init, pings first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fakes.aws_json_server import Answer, ScriptedServer, scripted_server
from lambda_process import LAMBDA_ENV, run_handler

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[3]
PATH = [REPO / "functions" / "api", REPO / "layers" / "shared"]
API_ENV = {
    "TABLE_NAME": "state",
    "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sync-requests",
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


# Imports the handler in a fresh interpreter, serves the events given on stdin (if any) and
# reports what init and the requests loaded and created.
_PROBE = """
import gc, json, sys
import api_fn.handler
from lambdakit import clients

class Context:
    function_name = "fn"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    memory_limit_in_mb = 256
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self):
        return 5000

answers = [api_fn.handler.handler(event, Context()) for event in json.load(sys.stdin)]
print(json.dumps({
    "modules": sorted(sys.modules),
    "clients": sorted(key[0] for key in clients._cache.clients),
    "dynamodb": type(api_fn.handler.dynamodb).__name__,
    "frozen": gc.get_freeze_count(),
    "tracer": api_fn.handler.tracer is not None,
    "statuses": [answer["statusCode"] for answer in answers],
}))
"""


def _probe(events: list[Any] | None = None, **env: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=json.dumps(events or []),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(map(str, PATH)),
            **LAMBDA_ENV,
            **API_ENV,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer, "\n".join(lines[:-1])


def _sdk_modules(modules: list[str]) -> list[str]:
    """The SDK modules loaded. Powertools' package init imports the bare ``botocore`` package
    (its ``__init__``, under a millisecond) to register a User-Agent hook, so that one name is
    always there; any botocore machinery (session, client, endpoint, auth) would show here."""
    return [
        name
        for name in modules
        if name.startswith(("botocore.", "boto3", "urllib3", "s3transfer", "dateutil"))
    ]


def test_init_creates_only_the_http_dynamodb_client_and_freezes_the_heap() -> None:
    # when the module is imported as a cold start does
    state, logs = _probe()
    # then the read path's client is the botocore-free one, and init ended with gc.freeze()
    assert state["dynamodb"] == "DynamoHttpClient"
    assert state["clients"] == []
    assert state["frozen"] > 0
    modules = set(state["modules"])
    # nothing only some routes (or no route) need
    for heavy in ("boto3", "requests", "aws_xray_sdk", "vulnstats.sync", "vulnstats.queue"):
        assert heavy not in modules, heavy
    assert _sdk_modules(state["modules"]) == []
    assert state["tracer"] is False
    # the priming read was tried (the test endpoint is closed) and its failure only logged
    assert "priming read failed" in logs


def test_serving_requests_never_imports_botocore(server: ScriptedServer, load_event: Any) -> None:
    # given a DynamoDB stand-in with a snapshot, and a cold start pointed at it with credentials
    snapshot = {"pk": {"S": "STATS"}, "sk": {"S": "LATEST"}, "run_id": {"S": "r1"}}
    snapshot |= {"computed_at": {"S": "2026-11-22T06:00:00Z"}, "snapshot": {"S": "{}"}}
    server.script = [Answer.ok({}), Answer.ok({})]  # priming and /health: no sync yet
    server.default = Answer.ok({"Item": snapshot, "Items": []})  # /stats, /vulnerabilities
    events = [
        load_event(name)
        for name in ("api_get_health.json", "api_get_stats.json", "api_list_vulnerabilities.json")
    ]
    # when it serves /health, /stats and /vulnerabilities
    state, _ = _probe(
        events,
        AWS_ENDPOINT_URL=server.url,
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret",
    )
    # then every read went to DynamoDB over the http client, and botocore was never imported
    assert state["statuses"] == [200, 200, 200]
    targets = set(server.targets())
    assert targets == {"DynamoDB_20120810.GetItem", "DynamoDB_20120810.Query"}
    assert _sdk_modules(state["modules"]) == []


def test_the_botocore_store_is_one_setting_away() -> None:
    state, _ = _probe(DYNAMODB_CLIENT="botocore")
    assert state["clients"] == ["dynamodb"]
    assert state["dynamodb"] == "DynamoDB"


def test_a_bad_client_setting_stops_init_naming_the_choices() -> None:
    answer = run_handler("api_fn.handler", PATH, {}, API_ENV | {"DYNAMODB_CLIENT": "boto"})
    assert answer["init_error"] == "SettingsError"
    assert "DYNAMODB_CLIENT: 'boto' is not one of http, botocore" in answer["message"]


def test_under_snapstart_init_creates_the_client_but_opens_no_connection() -> None:
    state, logs = _probe(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    assert state["dynamodb"] == "DynamoHttpClient"
    assert "priming read failed" not in logs


def test_tracer_exists_only_when_tracing_is_on() -> None:
    state, _ = _probe(TRACING_ENABLED="true", AWS_XRAY_SDK_ENABLED="false")
    assert state["tracer"] is True


def test_a_warming_ping_is_answered_before_routing(load_event: Any) -> None:
    # given the fixture ping (the table endpoint is a closed port: any read would fail)
    answer = run_handler("api_fn.handler", PATH, load_event("api_warming_ping.json"), API_ENV)
    result = answer["result"]
    assert result["warmed"] is True
    assert result["ping_id"] == "2026-11-22T09:05:00Z#1"
    assert result["cold"] is True
    assert "statusCode" not in result


def test_an_unreachable_table_is_a_500_without_internals(load_event: Any) -> None:
    answer = run_handler(
        "api_fn.handler", PATH, load_event("api_list_vulnerabilities.json"), API_ENV
    )
    result = answer["result"]
    assert result["statusCode"] == 500
    body = json.loads(result["body"])
    assert body == {
        "message": "internal error",
        "requestId": "0d9a2c1e-0002-4a7b-9c3d-5e6f7a8b9c02",
    }
