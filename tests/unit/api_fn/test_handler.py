"""The handler module as Lambda loads it: lean imports, one client made at init, pings first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lambda_process import LAMBDA_ENV, run_handler

REPO = Path(__file__).resolve().parents[3]
PATH = [REPO / "functions" / "api", REPO / "layers" / "shared"]
API_ENV = {
    "TABLE_NAME": "state",
    "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sync-requests",
}

# Imports the handler in a fresh interpreter and reports what init loaded and created.
_PROBE = """
import gc, json, sys
import api_fn.handler
from lambdakit import clients
print(json.dumps({
    "modules": sorted(sys.modules),
    "clients": sorted(key[0] for key in clients._cache.clients),
    "frozen": gc.get_freeze_count(),
    "tracer": api_fn.handler.tracer is not None,
}))
"""


def _probe(**env: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
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


def test_init_creates_only_the_dynamodb_client_and_freezes_the_heap() -> None:
    # when the module is imported as a cold start does
    state, logs = _probe()
    # then one DynamoDB client exists, made through botocore, and init ended with gc.freeze()
    assert state["clients"] == ["dynamodb"]
    assert state["frozen"] > 0
    modules = set(state["modules"])
    # nothing only some routes (or no route) need
    for heavy in ("boto3", "requests", "aws_xray_sdk", "vulnstats.sync", "vulnstats.queue"):
        assert heavy not in modules, heavy
    assert state["tracer"] is False
    # the priming read was tried (the test endpoint is closed) and its failure only logged
    assert "priming read failed" in logs


def test_under_snapstart_init_creates_the_client_but_opens_no_connection() -> None:
    state, logs = _probe(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    assert state["clients"] == ["dynamodb"]
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
