"""The sync function through the local stage: real handler, template settings, boto3 Invoke."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stage_support import invoke_client, isolated_stage
from sync_stage import items, poll, runs, set_env, set_faults, set_revision

from localstage.aws import local_client
from localstage.vanta_data import Dataset, Revision
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-stage")]

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
REGION = "us-east-1"
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DATA = Dataset(seed=31, vulnerability_count=150, asset_count=20, remediation_count=60, now=_TODAY)
PK = {"assets": "ASSET", "vulnerabilities": "VULN", "remediations": "REM"}


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("sync-stage"), name="sync-stage", dataset=DATA
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(stage: LocalStage) -> Any:
    return invoke_client(stage)


@pytest.fixture(scope="module")
def dynamodb(stage: LocalStage) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", stage.urls["aws"], REGION)
    return client


def _invoke(client: Any, event: Any) -> dict[str, Any]:
    answer = client.invoke(FunctionName="SyncFunction", Payload=json.dumps(event))
    assert "FunctionError" not in answer, answer["Payload"].read()
    payload: dict[str, Any] = json.loads(answer["Payload"].read())
    return payload


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_scheduled_sync_stores_the_upstream_set_and_a_replay_does_nothing(
    stage: LocalStage, lambda_client: Any, dynamodb: DynamoDBClient
) -> None:
    table = stage.physical_ids["StateTable"]
    event = _event("sync_scheduled.json")
    # given a fresh stage / when the scheduled event is delivered
    first = _invoke(lambda_client, event)
    # then a full sync ran and the table holds exactly the upstream set
    assert first["status"] == "succeeded", first
    assert items(dynamodb, table, "ASSET") == {rec["id"]: rec for rec in DATA.iter_assets()}
    assert items(dynamodb, table, "VULN") == {rec["id"]: rec for rec in DATA.iter_vulnerabilities()}
    assert items(dynamodb, table, "REM") == {rec["id"]: rec for rec in DATA.iter_remediations()}
    # when the same event is delivered again
    second = _invoke(lambda_client, event)
    # then the stored answer comes back and no second run exists
    assert second == first
    assert list(runs(dynamodb, table).values()) == ["succeeded"]


def test_manual_start_while_a_run_is_going_is_refused(
    stage: LocalStage, lambda_client: Any, dynamodb: DynamoDBClient
) -> None:
    table = stage.physical_ids["StateTable"]
    before = set(runs(dynamodb, table))
    # given a slow upstream and small pages, so a run takes seconds
    set_faults(
        stage,
        {
            "rules": [{"kind": "latency", "endpoint": "vulnerabilities", "seconds": 1.0}],
            "token_rate_limit_per_minute": 0,
        },
    )
    set_env(lambda_client, VANTA_PAGE_SIZE="10")
    try:
        # when a run is started asynchronously and is under way
        lambda_client.invoke(
            FunctionName="SyncFunction",
            InvocationType="Event",
            Payload=json.dumps(manual_event("long run")),
        )

        def running() -> str | None:
            fresh = {k: v for k, v in runs(dynamodb, table).items() if k not in before}
            return next((k for k, v in fresh.items() if v == "running"), None)

        run_id = poll(running, timeout=60, what="no run started")
        # and a person starts another one
        answer = _invoke(lambda_client, _event("sync_manual.json"))
        # then it is refused and names the run in progress
        assert answer["status"] == "refused", answer
        assert answer["run_id"] == run_id
    finally:
        set_faults(stage, {"rules": [], "token_rate_limit_per_minute": 0})
    # and the running run finishes on its own, with no other run recorded
    poll(
        lambda: True if runs(dynamodb, table).get(run_id) == "succeeded" else None,
        timeout=120,
        what="the long run did not finish",
    )
    assert set(runs(dynamodb, table)) - before == {run_id}


def test_run_cut_into_continuations_by_a_tiny_time_budget_reaches_the_upstream_state(
    stage: LocalStage, lambda_client: Any, dynamodb: DynamoDBClient
) -> None:
    table = stage.physical_ids["StateTable"]
    before = set(runs(dynamodb, table))
    # given an upstream that changed, and invocations that must hand over after every page
    # (continuations go through the SyncRequests queue, as on AWS)
    revised = DATA.with_revision(
        Revision(number=2, change_fraction=0.1, removed_count=5, added_count=7)
    )
    set_revision(stage, revised.revision)
    set_env(
        lambda_client,
        timeout=600,
        VANTA_PAGE_SIZE="100",
        SYNC_TIME_MARGIN_SECONDS="599.9",
        AWS_ENDPOINT_URL_LAMBDA=stage.urls["invoke"],
    )
    try:
        # when a run starts
        first = _invoke(lambda_client, manual_event("continuations"))
        # then it hands over, and its continuations finish it
        assert first["status"] == "continuing", first
        run_id = first["run_id"]
        poll(
            lambda: True if runs(dynamodb, table).get(run_id) == "succeeded" else None,
            timeout=120,
            what="the continued run did not finish",
        )
    finally:
        set_env(lambda_client, timeout=900, SYNC_TIME_MARGIN_SECONDS="90", VANTA_PAGE_SIZE="100")
    run = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": "RUN"}, "sk": {"S": run_id}}, ConsistentRead=True
    )["Item"]
    assert int(run["continuations"]["N"]) >= 3
    assert set(runs(dynamodb, table)) - before == {run_id}
    # and the table holds exactly the revised upstream set
    assert items(dynamodb, table, "VULN") == {
        rec["id"]: rec for rec in revised.iter_vulnerabilities()
    }
    assert items(dynamodb, table, "ASSET") == {rec["id"]: rec for rec in revised.iter_assets()}


def test_run_id_promised_by_post_sync_exists_when_a_failed_run_is_resumed(
    stage: LocalStage, lambda_client: Any, dynamodb: DynamoDBClient
) -> None:
    table = stage.physical_ids["StateTable"]
    headers = {"x-api-key": stage.api_key}
    # given a run that failed (the upstream refused the findings listing)
    set_faults(
        stage,
        {
            "rules": [{"kind": "status", "endpoint": "vulnerabilities", "status": 400}],
            "token_rate_limit_per_minute": 0,
        },
    )
    try:
        failed = _invoke(lambda_client, manual_event("will fail"))
    finally:
        set_faults(stage, {"rules": [], "token_rate_limit_per_minute": 0})
    assert failed["status"] == "failed", failed
    # and an API whose Lambda calls reach the local Invoke API
    config = lambda_client.get_function_configuration(FunctionName="ApiFunction")
    variables = dict(config["Environment"]["Variables"])
    variables["AWS_ENDPOINT_URL_LAMBDA"] = stage.urls["invoke"]
    lambda_client.update_function_configuration(
        FunctionName="ApiFunction", Environment={"Variables": variables}
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName="ApiFunction")
    # when a person starts a sync through the API
    response = requests.post(
        f"{stage.urls['api']}/sync", json={"reason": "retry"}, headers=headers, timeout=60
    )
    assert response.status_code == 202, response.text
    promised = response.json()["runId"]
    # and the sync it started has finished (it resumes the failed run)
    poll(
        lambda: True if runs(dynamodb, table).get(failed["run_id"]) == "succeeded" else None,
        timeout=120,
        what="the started sync did not finish",
    )
    # then the run the API named can be looked up
    answer = requests.get(f"{stage.urls['api']}/sync/runs/{promised}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
