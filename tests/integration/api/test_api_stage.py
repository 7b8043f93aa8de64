"""The API through the local stage's API Gateway front, after one real sync of the stand-in."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stage_support import invoke_client, isolated_stage

from localstage.aws import local_client
from localstage.vanta_data import Dataset
from vulnstats.models import AssetType, Severity, Vulnerability, parse_vulnerability

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api-stage")]

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
REGION = "us-east-1"
DATA = Dataset(
    seed=23,
    vulnerability_count=260,
    asset_count=25,
    remediation_count=40,
    now=datetime.now(UTC).replace(microsecond=0),
)
PROTECTED = (
    ("GET", "/stats"),
    ("GET", "/stats/history"),
    ("GET", "/vulnerabilities"),
    ("GET", "/vulnerabilities/x"),
    ("GET", "/sync/runs"),
    ("GET", "/sync/runs/x"),
    ("POST", "/sync"),
)


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("api-stage"), name="api-stage", dataset=DATA
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(stage: LocalStage) -> Any:
    return invoke_client(stage)


@pytest.fixture(scope="module")
def dynamodb(stage: LocalStage) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", stage.urls["aws"], REGION)
    return client


def _invoke(client: Any, function: str, event: Any) -> Any:
    answer = client.invoke(FunctionName=function, Payload=json.dumps(event))
    assert "FunctionError" not in answer, answer
    return json.loads(answer["Payload"].read())


@pytest.fixture(scope="module")
def synced(stage: LocalStage, lambda_client: Any) -> dict[str, Any]:
    # POST /sync reaches the local Invoke API, as it reaches Lambda in AWS.
    config = lambda_client.get_function_configuration(FunctionName="ApiFunction")
    env = dict(config["Environment"]["Variables"]) | {
        "AWS_ENDPOINT_URL_LAMBDA": stage.urls["invoke"]
    }
    lambda_client.update_function_configuration(
        FunctionName="ApiFunction", Environment={"Variables": env}
    )
    result: dict[str, Any] = _invoke(lambda_client, "SyncFunction", _event("sync_manual.json"))
    assert result["status"] == "succeeded", result
    return result


@pytest.fixture(scope="module")
def api(stage: LocalStage, synced: dict[str, Any]) -> Callable[..., requests.Response]:
    session = requests.Session()

    def call(method: str, path: str, *, key: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key:
            headers["x-api-key"] = stage.api_key
        return session.request(
            method, f"{stage.urls['api']}{path}", headers=headers, timeout=60, **kwargs
        )

    return call


# ----- the oracle: the stand-in's records, joined and filtered from the definitions -----


def _oracle_findings() -> list[Vulnerability]:
    out = []
    for raw in DATA.iter_vulnerabilities():
        asset = DATA.get_asset(raw["targetId"])
        asset_type = None if asset is None else AssetType(asset["assetType"])
        out.append(parse_vulnerability(raw).with_asset_type(asset_type))
    return out


def _expected(query: dict[str, str], now: datetime) -> set[str]:
    out = set()
    for v in _oracle_findings():
        rbd = v.remediate_by_date
        checks = [
            "severity" not in query or v.severity is Severity.parse(query["severity"]),
            "overdue" not in query or v.is_overdue_at(now) is (query["overdue"] == "true"),
            "dueWithinDays" not in query
            or (
                rbd is not None and now <= rbd <= now + timedelta(days=int(query["dueWithinDays"]))
            ),
            "integrationId" not in query or v.integration_id == query["integrationId"],
            "assetType" not in query
            or (v.asset_type is not None and v.asset_type.value == query["assetType"]),
            "fixable" not in query or v.is_fixable is (query["fixable"] == "true"),
            query.get("includeDeactivated") == "true" or not v.is_deactivated_at(now),
        ]
        if all(checks):
            out.add(v.id)
    return out


def _walk(api: Callable[..., requests.Response], query: dict[str, str], limit: int) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(500):
        params = query | {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = api("GET", "/vulnerabilities", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


# ----- tests -----


def test_before_the_first_sync_statistics_are_503_and_health_has_no_age(
    stage: LocalStage,
) -> None:
    # given a fresh stage: the sync has not run (this test comes first and asks for no sync)
    headers = {"x-api-key": stage.api_key}
    for path in ("/stats", "/stats/history"):
        response = requests.get(f"{stage.urls['api']}{path}", headers=headers, timeout=60)
        assert response.status_code == 503, path
        assert response.json() == {
            "message": "no sync has completed yet; statistics appear after the first successful run"
        }
    health = requests.get(f"{stage.urls['api']}/health", timeout=60).json()
    assert health["lastSuccessfulSync"] is None
    assert health["dataAgeSeconds"] is None
    empty = requests.get(f"{stage.urls['api']}/vulnerabilities", headers=headers, timeout=60)
    assert empty.json() == {"items": [], "count": 0, "limit": 50, "nextCursor": None}


def test_health_needs_no_key_and_reports_the_sync(
    api: Callable[..., requests.Response], synced: dict[str, Any]
) -> None:
    response = api("GET", "/health", key=False)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["stage"] == "local"
    assert body["lastSuccessfulSync"]["runId"] == synced["run_id"]
    assert 0 <= body["dataAgeSeconds"] < 600


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_other_route_refuses_a_request_without_the_key(
    api: Callable[..., requests.Response], method: str, path: str
) -> None:
    response = api(method, path, key=False)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_stats_carry_cache_headers_and_answer_304(api: Callable[..., requests.Response]) -> None:
    first = api("GET", "/stats")
    assert first.status_code == 200
    body = first.json()
    assert body["runId"]
    assert body["snapshot"]
    assert first.headers["Cache-Control"].startswith(("public, max-age=", "no-cache"))
    etag = first.headers["ETag"]
    again = api("GET", "/stats", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag


def test_stats_with_include_deactivated_count_every_finding_in_camel_case(
    api: Callable[..., requests.Response],
) -> None:
    # given the stand-in's findings, some deactivated at the sync / when both variants are read
    default = api("GET", "/stats").json()["snapshot"]
    every = api("GET", "/stats", params={"includeDeactivated": "true"}).json()["snapshot"]
    # then each counts its own population exactly, under camelCase field names
    now = datetime.fromisoformat(default["computedAt"])
    findings = _oracle_findings()
    deactivated = sum(1 for v in findings if v.is_deactivated_at(now))
    assert deactivated > 0  # the data set exercises the difference
    assert default["totals"]["open"] == len(findings) - deactivated
    assert every["totals"]["open"] == len(findings)
    assert default["totals"]["deactivated"] == every["totals"]["deactivated"] == deactivated
    assert (default["includesDeactivated"], every["includesDeactivated"]) == (False, True)
    assert sum(every["openBySeverity"].values()) == len(findings)
    assert set(default["remediations"]["all"]) == {
        "count",
        "meanDaysToRemediate",
        "withSla",
        "onTime",
        "onTimeRate",
    }
    assert default["remediations"] == every["remediations"]
    bad = api("GET", "/stats", params={"includeDeactivated": "1"})
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "includeDeactivated"


def test_history_lists_today_and_answers_304(api: Callable[..., requests.Response]) -> None:
    response = api("GET", "/stats/history", params={"days": "7"})
    assert response.status_code == 200
    days = [entry["day"] for entry in response.json()["snapshots"]]
    assert days == [datetime.now(UTC).date().isoformat()]
    cached = api(
        "GET",
        "/stats/history",
        params={"days": "7"},
        headers={"If-None-Match": response.headers["ETag"]},
    )
    assert cached.status_code == 304
    bad = api("GET", "/stats/history", params={"days": "400"})
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "days"


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        ({}, 37),
        ({"includeDeactivated": "true"}, 500),
        ({"severity": "high"}, 7),
        ({"severity": "CRITICAL", "overdue": "true"}, 5),
        ({"severity": "MEDIUM", "dueWithinDays": "60"}, 9),
        ({"overdue": "false", "fixable": "true"}, 23),
        ({"integrationId": "aws"}, 11),
        ({"assetType": "SERVER", "includeDeactivated": "true"}, 4),
        ({"severity": "LOW", "fixable": "false", "overdue": "false"}, 3),
    ],
)
def test_walking_every_page_returns_each_matching_finding_once(
    api: Callable[..., requests.Response], query: dict[str, str], limit: int
) -> None:
    before = _expected(query, datetime.now(UTC))
    seen = _walk(api, query, limit)
    after = _expected(query, datetime.now(UTC))
    assert len(seen) == len(set(seen))
    # A deadline passing during the walk may move a finding; the rest must agree exactly.
    assert before & after <= set(seen) <= before | after
    assert seen or not (before | after)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"severity": "URGENT"}, "severity"),
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"assetType": "MAINFRAME"}, "assetType"),
        ({"dueWithinDays": "0"}, "dueWithinDays"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    api: Callable[..., requests.Response], params: dict[str, str], parameter: str
) -> None:
    response = api("GET", "/vulnerabilities", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == parameter
    assert body["message"].startswith(f"{parameter}: ")


def test_a_cursor_reused_with_other_filters_is_400(api: Callable[..., requests.Response]) -> None:
    cursor = api("GET", "/vulnerabilities", params={"limit": "3"}).json()["nextCursor"]
    response = api(
        "GET", "/vulnerabilities", params={"limit": "3", "severity": "low", "cursor": cursor}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "cursor: does not match these filters"


def test_one_vulnerability_and_404_for_an_unknown_id(api: Callable[..., requests.Response]) -> None:
    listed = api("GET", "/vulnerabilities", params={"limit": "1"}).json()["items"][0]
    found = api("GET", f"/vulnerabilities/{listed['id']}")
    assert found.status_code == 200
    detail = found.json()
    assert {k: detail[k] for k in listed} == listed
    assert detail["record"]["id"] == listed["id"]
    missing = api("GET", "/vulnerabilities/vuln-does-not-exist")
    assert missing.status_code == 404
    assert missing.json()["message"] == "no vulnerability vuln-does-not-exist"


def test_runs_list_the_sync_and_404_for_an_unknown_run(
    api: Callable[..., requests.Response], synced: dict[str, Any]
) -> None:
    runs = api("GET", "/sync/runs", params={"limit": "5"}).json()["runs"]
    assert synced["run_id"] in [run["runId"] for run in runs]
    one = api("GET", f"/sync/runs/{synced['run_id']}")
    assert one.status_code == 200
    assert one.json()["status"] == "succeeded"
    assert api("GET", "/sync/runs/20200101T000000Z-00000000").status_code == 404


def test_fixture_events_through_the_invoke_api(lambda_client: Any, synced: dict[str, Any]) -> None:
    stats = _invoke(lambda_client, "ApiFunction", _event("api_get_stats.json"))
    assert stats["statusCode"] == 200
    listed = _invoke(lambda_client, "ApiFunction", _event("api_list_vulnerabilities.json"))
    assert listed["statusCode"] == 200
    assert len(json.loads(listed["body"])["items"]) <= 2
    missing = _invoke(lambda_client, "ApiFunction", _event("api_get_vulnerability_missing.json"))
    assert missing["statusCode"] == 404
    ping = _invoke(lambda_client, "ApiFunction", _event("api_warming_ping.json"))
    assert ping["warmed"] is True


def test_wrong_method_is_405_from_the_function_and_403_from_the_gateway(
    api: Callable[..., requests.Response], lambda_client: Any, synced: dict[str, Any]
) -> None:
    # API Gateway answers a method the resource lacks itself, as a REST API does
    assert api("DELETE", "/stats").status_code == 403
    assert api("GET", "/no-such-route").status_code == 403
    # a request that reaches the function with a wrong method gets 405, an unknown path 404
    event = _event("api_get_stats.json") | {"httpMethod": "DELETE"}
    answer = _invoke(lambda_client, "ApiFunction", event)
    assert answer["statusCode"] == 405
    headers = answer.get("multiValueHeaders") or {}
    assert headers.get("Allow") == ["GET"] or (answer.get("headers") or {}).get("Allow") == "GET"
    event = _event("api_get_stats.json") | {"path": "/nope", "resource": "/nope"}
    assert _invoke(lambda_client, "ApiFunction", event)["statusCode"] == 404


def test_malformed_sync_body_is_400_naming_body(api: Callable[..., requests.Response]) -> None:
    response = api("POST", "/sync", data="{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "body"


def test_post_sync_while_a_run_holds_the_lock_names_the_next_run(
    api: Callable[..., requests.Response], stage: LocalStage, dynamodb: DynamoDBClient
) -> None:
    table = stage.physical_ids["StateTable"]
    holder = "20261122T000000Z-held0001"
    lease = int(time.time()) + 600
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "LOCK"},
            "sk": {"S": "SYNC"},
            "run_id": {"S": holder},
            "lease_until": {"N": str(lease)},
        },
    )
    try:
        # when two people ask for a sync while a run is live
        first = api("POST", "/sync", json={"reason": "should wait"})
        second = api("POST", "/sync", json={"reason": "me too"})
        # then both are accepted for the same next run, not refused
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["status"] == second.json()["status"] == "queued"
        assert first.json()["runId"] == second.json()["runId"] != holder
    finally:
        for sort_key in ("SYNC", "NEXT"):
            dynamodb.delete_item(TableName=table, Key={"pk": {"S": "LOCK"}, "sk": {"S": sort_key}})


def test_post_sync_starts_a_run_whose_record_appears(api: Callable[..., requests.Response]) -> None:
    response = api("POST", "/sync", json={"reason": "integration test"})
    assert response.status_code == 202, response.text
    body = response.json()
    run_id = body["runId"]
    assert body["links"] == {"run": f"/sync/runs/{run_id}"}
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        run = api("GET", body["links"]["run"])
        if run.status_code == 200:
            status = run.json()["status"]
            if status in ("succeeded", "failed"):
                break
        time.sleep(0.2)
    assert status == "succeeded"
    assert api("GET", body["links"]["run"]).json()["reason"] == "integration test"


def test_a_cursor_is_opaque_base64url(api: Callable[..., requests.Response]) -> None:
    cursor = api("GET", "/vulnerabilities", params={"limit": "1"}).json()["nextCursor"]
    assert cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
