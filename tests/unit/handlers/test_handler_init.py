"""Each handler module as Lambda loads it: settings checked at init, events answered, pings first.

Every case runs in a fresh interpreter (tests/support/lambda_process.py) because the handlers
validate their settings at import, exactly as a Lambda cold start does; nothing here touches the
network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lambda_process import run_handler

from vulnstats.triggers import manual_event

REPO = Path(__file__).resolve().parents[3]

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/sync-requests"
SYNC_ENV = {
    "TABLE_NAME": "state",
    "ARCHIVE_BUCKET": "archive",
    "VANTA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:vanta-AbCdEf",
    "SYNC_QUEUE_URL": QUEUE_URL,
}
API_ENV = {"TABLE_NAME": "state", "SYNC_QUEUE_URL": QUEUE_URL}
# The warmer calls Lambda: dummy credentials, so botocore never looks beyond the environment.
WARMER_ENV = {
    "WARM_TARGETS": "api:live",
    "WARM_CONCURRENCY": "3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _run(module: str, code_dir: str, env: dict[str, str], event: Any) -> dict[str, Any]:
    path = [REPO / "functions" / code_dir, REPO / "layers" / "shared"]
    return run_handler(module, path, event, env)


def test_api_health_through_the_handler(load_event: Any) -> None:
    answer = _run("api_fn.handler", "api", API_ENV, load_event("api_get_health.json"))
    assert answer["result"]["statusCode"] == 200
    assert json.loads(answer["result"]["body"])["version"] == "9.9.9"


def test_api_answers_a_warming_ping_without_routing() -> None:
    answer = _run("api_fn.handler", "api", API_ENV, {"warmer": True, "ping_id": "p1"})
    result = answer["result"]
    assert result["warmed"] is True
    assert result["ping_id"] == "p1"
    assert result["app_version"] == "9.9.9"
    assert "statusCode" not in result


def test_api_init_names_every_missing_variable(load_event: Any) -> None:
    answer = _run("api_fn.handler", "api", {}, load_event("api_get_health.json"))
    assert answer["init_error"] == "SettingsError"
    assert "TABLE_NAME: missing" in answer["message"]
    assert "SYNC_QUEUE_URL: missing" in answer["message"]


def test_sync_refuses_a_bad_event_loudly_so_it_reaches_the_dlq() -> None:
    answer = _run("sync_fn.handler", "sync", SYNC_ENV, {"action": "explode"})
    assert answer["error"] == "InvalidTriggerError"
    assert "action: unknown value 'explode'" in answer["message"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"VANTA_SECRET_ARN": "vcs_plaintextsecret"},
            "VANTA_SECRET_ARN: 'vcs_plaintextsecret' is not",
        ),
        (
            {"VANTA_API_BASE_URL": "http://api.vanta.com"},
            "VANTA_API_BASE_URL: 'http://api.vanta.com' must use https",
        ),
        ({"ARCHIVE_BUCKET": ""}, "ARCHIVE_BUCKET: missing"),
    ],
)
def test_sync_init_rejects_bad_settings(override: dict[str, str], expected: str) -> None:
    answer = _run("sync_fn.handler", "sync", SYNC_ENV | override, manual_event())
    assert answer["init_error"] == "SettingsError"
    assert expected in answer["message"]


def test_sync_allows_plain_http_to_a_loopback_stand_in() -> None:
    # given the local stage's stand-in URL / when the function starts / then init succeeds
    env = SYNC_ENV | {"VANTA_API_BASE_URL": "http://127.0.0.1:8030/"}
    answer = _run("sync_fn.handler", "sync", env, {"warmer": True})
    assert answer["result"]["warmed"] is True


def test_warmer_reports_an_unreachable_target_as_failures_not_as_a_crash(load_event: Any) -> None:
    # given the Lambda endpoint is a closed local port
    answer = _run("warmer_fn.handler", "warmer", WARMER_ENV, load_event("warmer_scheduled.json"))
    # then the run ends normally and says what happened to each of the 3 pings
    result = answer["result"]
    assert (result["requested"], result["reached"], result["failures"]) == (3, 0, 3)
    assert result["complete"] is False
    (target,) = result["targets"]
    assert target["target"] == "api:live"
    assert target["errors"] == {"EndpointConnectionError": 3}


def test_warmer_peak_schedule_sends_its_own_concurrency(load_event: Any) -> None:
    answer = _run(
        "warmer_fn.handler", "warmer", WARMER_ENV, load_event("warmer_schedule_peak.json")
    )
    assert (answer["result"]["schedule"], answer["result"]["requested"]) == ("peak", 6)


def test_warmer_refuses_an_event_it_does_not_know(load_event: Any) -> None:
    answer = _run("warmer_fn.handler", "warmer", WARMER_ENV, load_event("api_get_health.json"))
    assert answer["error"] == "InvalidWarmerEventError"


def test_warmer_init_rejects_a_concurrency_out_of_range(load_event: Any) -> None:
    env = WARMER_ENV | {"WARM_CONCURRENCY": "0"}
    answer = _run("warmer_fn.handler", "warmer", env, load_event("warmer_scheduled.json"))
    assert answer["init_error"] == "SettingsError"
    assert "WARM_CONCURRENCY: 0 is below the minimum 1" in answer["message"]


def test_api_init_refuses_to_start_without_a_metrics_namespace(load_event: Any) -> None:
    # given the deployed value missing: every warming ping would otherwise crash at metric flush
    env = API_ENV | {"POWERTOOLS_METRICS_NAMESPACE": ""}  # overrides LAMBDA_ENV's
    answer = _run("api_fn.handler", "api", env, load_event("api_get_health.json"))
    assert answer["init_error"] == "SettingsError"
    assert "POWERTOOLS_METRICS_NAMESPACE: missing" in answer["message"]
