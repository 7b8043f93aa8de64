"""DynamoStore against a moto server holding the template's state table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest

from lambdakit.clients import clear_clients
from localstage.aws import MotoServer, aws_environment, local_client
from vulnstats.dynamo import DynamoStore
from vulnstats.errors import StorageError
from vulnstats.models import (
    AssetType,
    content_hash,
    parse_asset,
    parse_remediation,
    parse_vulnerability,
)
from vulnstats.ports import (
    Checkpoint,
    Counts,
    LastComplete,
    Phase,
    RunInProgressError,
    RunRecord,
    RunStatus,
    StateItem,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-adapters")]

REGION = "us-east-1"
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def table_name(stack_resources: dict[str, str]) -> str:
    return stack_resources["StateTable"]


@pytest.fixture(scope="module")
def client(moto: MotoServer) -> DynamoDBClient:
    created: DynamoDBClient = local_client("dynamodb", moto.endpoint_url, REGION)
    return created


@pytest.fixture
def store(client: DynamoDBClient, table_name: str) -> DynamoStore:
    """A store on an emptied table, whose sleeps are recorded instead of slept."""
    _empty(client, table_name)
    return DynamoStore(table_name, client=client, sleep=lambda _: None)


def _empty(client: DynamoDBClient, table_name: str) -> None:
    for page in client.get_paginator("scan").paginate(
        TableName=table_name, ProjectionExpression="pk, sk"
    ):
        for item in page["Items"]:
            client.delete_item(TableName=table_name, Key={"pk": item["pk"], "sk": item["sk"]})


def vulnerability(n: int, **changes: Any) -> StateItem:
    raw: dict[str, Any] = {
        "id": f"vuln-{n:05d}",
        "name": f"CVE-2024-{n}",
        "integrationId": "snyk" if n % 2 else "inspector",
        "targetId": f"asset-{n % 3}",
        "firstDetectedDate": "2026-01-01T00:00:00.000Z",
        "remediateByDate": f"2026-12-{1 + n % 28:02d}T00:00:00.000Z" if n % 4 else None,
        "severity": ("LOW", "MEDIUM", "HIGH", "CRITICAL")[n % 4],
        "isFixable": n % 2 == 0,
        "deactivateMetadata": None,
        **changes,
    }
    record = parse_vulnerability(raw).with_asset_type(AssetType.SERVER if n % 3 else None)
    return StateItem(record=record, raw=raw, content_hash=content_hash(raw))


def remediation(n: int, remediated: str | None) -> StateItem:
    raw = {
        "id": f"rem-{n}",
        "vulnerabilityId": f"vuln-{n}",
        "vulnerableAssetId": "asset-1",
        "severity": "high",
        "detectedDate": "2026-01-01T00:00:00.000Z",
        "slaDeadlineDate": "2026-02-01T00:00:00.000Z",
        "remediationDate": remediated,
    }
    return StateItem(record=parse_remediation(raw), raw=raw, content_hash=content_hash(raw))


def asset(n: int, asset_type: str) -> StateItem:
    raw = {"id": f"asset-{n}", "name": f"host-{n}", "assetType": asset_type, "hasBeenScanned": True}
    return StateItem(record=parse_asset(raw), raw=raw, content_hash=content_hash(raw))


def run(run_id: str, status: RunStatus = RunStatus.RUNNING, **changes: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "trigger": "scheduled",
        "started_at": NOW,
        "updated_at": NOW,
        **changes,
    }
    return RunRecord(**values)


# ----- state -----


def test_given_written_items_when_reading_hashes_then_present_ids_only_across_chunks(
    store: DynamoStore,
) -> None:
    items = [vulnerability(n) for n in range(230)]
    store.write("vulnerabilities", items)

    asked = [item.id for item in items] + ["vuln-absent"]
    hashes = store.stored_hashes("vulnerabilities", asked)

    assert hashes == {item.id: item.content_hash for item in items}
    assert store.items_written["vulnerabilities"] == 230
    assert store.stored_hashes("remediations", asked) == {}


def test_given_an_unchanged_page_when_compared_then_only_the_changed_record_is_written(
    store: DynamoStore,
) -> None:
    store.write("vulnerabilities", [vulnerability(n) for n in range(10)])
    page = [vulnerability(n) for n in range(9)] + [vulnerability(9, name="renamed")]

    stored = store.stored_hashes("vulnerabilities", [item.id for item in page])
    changed = [item for item in page if stored.get(item.id) != item.content_hash]
    store.write("vulnerabilities", changed)

    assert [item.id for item in changed] == ["vuln-00009"]
    assert store.items_written["vulnerabilities"] == 11
    assert {v.id: v.name for v in store.iter_vulnerabilities()}["vuln-00009"] == "renamed"


def test_given_duplicate_ids_in_one_write_when_written_then_once_and_the_last_wins(
    store: DynamoStore,
) -> None:
    store.write("vulnerabilities", [vulnerability(1), vulnerability(1, name="second")])

    (stored,) = store.iter_vulnerabilities()

    assert stored.name == "second"
    assert store.items_written["vulnerabilities"] == 1


def test_given_stored_ids_when_deleting_then_gone_and_counted(store: DynamoStore) -> None:
    store.write("vulnerabilities", [vulnerability(n) for n in range(40)])

    store.delete("vulnerabilities", [f"vuln-{n:05d}" for n in range(30)] + ["vuln-00000", "nope"])

    assert sorted(store.iter_ids("vulnerabilities")) == [f"vuln-{n:05d}" for n in range(30, 40)]
    assert store.items_deleted["vulnerabilities"] == 31


def test_given_more_ids_than_a_page_when_listing_ids_then_every_page_is_read(
    client: DynamoDBClient, table_name: str, store: DynamoStore
) -> None:
    store.write("vulnerabilities", [vulnerability(n) for n in range(35)])
    store.write("assets", [asset(1, "SERVER")])
    paged = DynamoStore(table_name, client=client, page_size=10)

    ids = list(paged.iter_ids("vulnerabilities"))

    assert ids == [f"vuln-{n:05d}" for n in range(35)]
    assert list(paged.iter_ids("assets")) == ["asset-1"]


def test_given_findings_and_assets_when_read_back_then_models_with_asset_types(
    store: DynamoStore,
) -> None:
    findings = [vulnerability(n) for n in range(12)]
    store.write("vulnerabilities", findings)
    store.write("assets", [asset(1, "SERVER"), asset(2, "workstation")])

    assert list(store.iter_vulnerabilities()) == [item.record for item in findings]
    assert store.asset_types() == {"asset-1": "SERVER", "asset-2": "WORKSTATION"}
    assert store.get_record("vulnerabilities", findings[4].id) == findings[4].record
    assert store.get_record("assets", "asset-2") == parse_asset(asset(2, "WORKSTATION").raw)
    assert store.get_record("remediations", findings[4].id) is None


def test_given_remediations_when_asking_since_a_date_then_only_later_ones_from_the_index(
    store: DynamoStore,
) -> None:
    store.write(
        "remediations",
        [
            remediation(1, "2026-08-01T00:00:00.000Z"),
            remediation(2, "2026-10-01T00:00:00Z"),
            remediation(3, "2026-10-01T00:00:00.001Z"),
            remediation(4, "2026-11-20T00:00:00.000Z"),
            remediation(5, None),
        ],
    )

    since = store.iter_remediations_since(datetime(2026, 10, 1, tzinfo=UTC))

    assert [r.id for r in since] == ["rem-2", "rem-3", "rem-4"]


# ----- unprocessed batches -----


class FlakyClient:
    """The real client, but the first ``failures`` batch calls leave the last 3 requests out."""

    def __init__(self, real: DynamoDBClient, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803
        ((table, requests),) = RequestItems.items()
        self.batch_sizes.append(len(requests))
        kept, left = requests, []
        if self.failures > 0:
            self.failures -= 1
            kept, left = requests[:-3], requests[-3:]
        if kept:
            self.real.batch_write_item(RequestItems={table: kept})
        return {"UnprocessedItems": {table: left} if left else {}}

    def batch_get_item(self, RequestItems: dict[str, dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.batch_sizes.append(len(keys))
        kept, left = keys, []
        if self.failures > 0:
            self.failures -= 1
            kept, left = keys[:-3], keys[-3:]
        real: Any = self.real
        response: Any = real.batch_get_item(RequestItems={table: {**request, "Keys": kept}})
        if left:
            response["UnprocessedKeys"] = {table: {**request, "Keys": left}}
        return cast("dict[str, Any]", response)


def test_given_unprocessed_items_when_writing_then_retried_with_backoff_and_counted_once(
    client: DynamoDBClient, table_name: str, store: DynamoStore
) -> None:
    flaky = FlakyClient(client, failures=2)
    sleeps: list[float] = []
    subject = DynamoStore(
        table_name, client=cast("DynamoDBClient", flaky), sleep=sleeps.append, track_ids=True
    )

    subject.write("vulnerabilities", [vulnerability(n) for n in range(30)])

    assert flaky.batch_sizes == [25, 3, 3, 5]
    assert len(sleeps) == 2
    assert subject.items_written["vulnerabilities"] == 30
    assert subject.writes is not None
    assert len(subject.writes) == 30
    assert set(subject.writes.values()) == {1}
    assert len(list(store.iter_ids("vulnerabilities"))) == 30


def test_given_unprocessed_keys_when_reading_hashes_then_retried_until_complete(
    client: DynamoDBClient, table_name: str, store: DynamoStore
) -> None:
    items = [vulnerability(n) for n in range(150)]
    store.write("vulnerabilities", items)
    flaky = FlakyClient(client, failures=1)
    subject = DynamoStore(table_name, client=cast("DynamoDBClient", flaky), sleep=lambda _: None)

    hashes = subject.stored_hashes("vulnerabilities", [item.id for item in items])

    assert len(hashes) == 150
    assert flaky.batch_sizes == [100, 3, 50]


def test_given_items_never_processed_when_writing_then_storage_error_after_bounded_attempts(
    client: DynamoDBClient, table_name: str, store: DynamoStore
) -> None:
    flaky = FlakyClient(client, failures=1000)
    sleeps: list[float] = []
    subject = DynamoStore(
        table_name, client=cast("DynamoDBClient", flaky), sleep=sleeps.append, batch_attempts=4
    )

    with pytest.raises(StorageError, match=rf"{table_name}: BatchWriteItem left 3 request"):
        subject.write("vulnerabilities", [vulnerability(n) for n in range(10)])
    assert len(flaky.batch_sizes) == 4
    assert len(sleeps) == 3


def test_given_no_such_table_when_writing_then_storage_error_names_table_and_call(
    client: DynamoDBClient,
) -> None:
    missing = DynamoStore("no-such-table", client=client)

    with pytest.raises(StorageError, match="no-such-table: BatchWriteItem failed") as caught:
        missing.write("assets", [asset(1, "SERVER")])
    assert caught.value.code == "ResourceNotFoundException"


def test_given_no_client_when_used_then_the_environment_endpoint_is_honoured(
    moto: MotoServer, table_name: str, store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_environment(moto.endpoint_url, REGION).items():
        monkeypatch.setenv(name, value)
    clear_clients()
    try:
        DynamoStore(table_name).put_run(run("20261122T060000Z-00000001"))
    finally:
        clear_clients()

    assert store.get_run("20261122T060000Z-00000001") is not None


# ----- lock -----


def test_given_a_free_lock_when_taken_and_renewed_then_held_and_others_refused(
    store: DynamoStore,
) -> None:
    store.acquire_lock("run-a", NOW, 960)
    store.acquire_lock("run-a", NOW + timedelta(minutes=5), 960, renew=True)

    with pytest.raises(RunInProgressError) as caught:
        store.acquire_lock("run-b", NOW + timedelta(minutes=10), 960)
    with pytest.raises(RunInProgressError):
        store.acquire_lock("run-b", NOW + timedelta(minutes=10), 960, renew=True)

    assert caught.value.holder == "run-a"
    assert caught.value.lease_until == NOW + timedelta(minutes=5, seconds=960)


def test_given_a_live_lock_when_a_new_start_names_the_same_run_then_refused(
    store: DynamoStore,
) -> None:
    store.acquire_lock("run-a", NOW, 960)

    with pytest.raises(RunInProgressError, match="run-a"):
        store.acquire_lock("run-a", NOW + timedelta(minutes=1), 960)


def test_given_an_expired_lease_when_another_run_starts_then_it_takes_over(
    store: DynamoStore,
) -> None:
    store.acquire_lock("run-a", NOW, 960)

    store.acquire_lock("run-b", NOW + timedelta(seconds=961), 960)

    with pytest.raises(RunInProgressError, match="run-b"):
        store.acquire_lock("run-a", NOW + timedelta(seconds=962), 960)


def test_given_a_held_lock_when_released_by_another_run_then_still_held_until_the_holder(
    store: DynamoStore,
) -> None:
    store.acquire_lock("run-a", NOW, 960)

    store.release_lock("run-b")
    with pytest.raises(RunInProgressError):
        store.acquire_lock("run-b", NOW, 960)
    store.release_lock("run-a")
    store.release_lock("run-a")

    store.acquire_lock("run-b", NOW, 960)


# ----- runs, last complete, snapshots -----


def test_given_runs_when_listing_latest_then_newest_first_and_limited(store: DynamoStore) -> None:
    ids = [f"20261122T0{n}0000Z-0000000{n}" for n in range(1, 6)]
    for run_id in ids:
        store.put_run(run(run_id))
    finished = run(
        ids[2],
        RunStatus.SUCCEEDED,
        finished_at=NOW + timedelta(minutes=1),
        checkpoint=Checkpoint(Phase.DONE, None, 4),
        counts=Counts(fetched=9, written=2, unchanged=7, pages=3),
        continuations=1,
    )
    store.put_run(finished)

    latest = store.latest_runs(3)

    assert [r.run_id for r in latest] == [ids[4], ids[3], ids[2]]
    assert latest[2] == finished
    assert store.get_run(ids[2]) == finished
    assert store.get_run("unknown") is None
    assert len(store.latest_runs(50)) == 5
    assert store.latest_runs(0) == []


def test_given_a_running_run_when_saved_then_its_checkpoint_cursor_comes_back(
    store: DynamoStore,
) -> None:
    saved = run(
        "20261122T060000Z-0000000a",
        checkpoint=Checkpoint(Phase.REMEDIATIONS, "abc==", 12),
        error="deadline",
    )

    store.put_run(saved)

    assert store.get_run(saved.run_id) == saved


def test_given_no_complete_run_when_set_then_it_is_returned(store: DynamoStore) -> None:
    last = LastComplete("run-a", NOW, NOW + timedelta(minutes=3))

    assert store.last_complete() is None
    store.set_last_complete(last)

    assert store.last_complete() == last


def test_given_snapshots_when_read_then_latest_day_and_history_oldest_first(
    store: DynamoStore,
) -> None:
    for offset in (0, 1, 3, 9):
        computed = NOW - timedelta(days=offset)
        store.put_snapshot(
            {"open": 100 - offset},
            run_id=f"run-{offset}",
            computed_at=computed,
            with_deactivated={"open": 200 - offset},
        )

    latest = store.get_snapshot()
    day = store.get_snapshot(date(2026, 11, 21))
    history = store.snapshot_history(7, NOW.date())

    assert latest == {
        "day": None,
        "run_id": "run-9",
        "computed_at": "2026-11-13T06:00:00.000000Z",
        "snapshot": {"open": 91},
        "snapshot_with_deactivated": {"open": 191},
    }
    assert day is not None
    assert day["snapshot"] == {"open": 99}
    assert store.get_snapshot("2026-11-20") is None
    assert [entry["day"] for entry in history] == ["2026-11-19", "2026-11-21", "2026-11-22"]
    assert [entry["snapshot"]["open"] for entry in history] == [97, 99, 100]
