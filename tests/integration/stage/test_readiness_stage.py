"""Readiness on the local stage: fresh data 200; stale data or an unreadable table 503.

What Route 53's health check sees through the API front, with no API key: the real function, the
real DynamoDB adapter (moto) and a real sync. Staleness is made by moving the last complete run's
finish back in the table, not by waiting.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
from stage_support import isolated_stage

from localstage.vanta_data import Dataset
from locate import local_session
from vulnstats.dynamo import DynamoStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("readiness")]

MAX_AGE: Final = 3600
REGION: Final = "us-west-2"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("readiness"),
        name="readiness",
        dataset=Dataset(seed=11, vulnerability_count=15, asset_count=5, remediation_count=5),
        overrides={"ReadinessMaxDataAgeSeconds": str(MAX_AGE)},
        region=REGION,
    ) as running:
        yield running


def _dynamodb(stage: LocalStage) -> Any:
    return local_session(REGION).client("dynamodb", endpoint_url=stage.urls["aws"])


def _ready(stage: LocalStage) -> requests.Response:
    return requests.get(stage.urls["api"] + "/health/ready", timeout=60)


def test_readiness_follows_the_data_the_region_can_serve(stage: LocalStage) -> None:
    # given a stage before its first sync: nothing to serve
    before = _ready(stage)
    assert before.status_code == 503, before.text
    assert before.json()["reason"] == "no-sync-yet"

    # when a sync completes, then the region is ready, and says which region it is
    result = stage.invoke("SyncFunction", {"action": "sync", "reason": "readiness test"})
    assert result.function_error is None, result.payload
    fresh = _ready(stage)
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert (body["status"], body["region"], body["maxDataAgeSeconds"]) == ("ready", REGION, MAX_AGE)
    assert body["dataAgeSeconds"] <= MAX_AGE
    assert fresh.headers["Cache-Control"] == "no-store"

    # when the last successful sync is moved back past the bound (as if every later run failed)
    store = DynamoStore(stage.physical_ids["StateTable"], client=_dynamodb(stage))
    last = store.last_complete()
    assert last is not None
    old = datetime.now(UTC) - timedelta(seconds=MAX_AGE + 600)
    store.set_last_complete(dataclasses.replace(last, started_at=old, finished_at=old))

    # then the region is not ready, for a reason a runbook can act on
    stale = _ready(stage)
    assert stale.status_code == 503, stale.text
    assert stale.json()["reason"] == "stale"
    assert stale.json()["dataAgeSeconds"] > MAX_AGE
    # while liveness still says the function is up
    assert requests.get(stage.urls["api"] + "/health", timeout=60).status_code == 200

    # when the table disappears (an unreadable table), then 503 table-unreadable
    _dynamodb(stage).delete_table(TableName=stage.physical_ids["StateTable"])
    gone = _ready(stage)
    assert gone.status_code == 503, gone.text
    assert gone.json()["reason"] == "table-unreadable"
    health = requests.get(stage.urls["api"] + "/health", timeout=60)
    assert (health.status_code, health.json()["status"]) == (200, "degraded")
