"""Items: typed attributes, keys and every record round-trip through a DynamoDB item."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from vulnstats.errors import StorageError
from vulnstats.items import (
    format_datetime,
    from_attribute,
    from_item,
    last_complete_from_item,
    last_complete_item,
    lock_item,
    record_from_item,
    remediation_from_item,
    run_from_item,
    run_item,
    snapshot_from_item,
    snapshot_items,
    snapshot_key,
    state_item,
    state_key,
    to_attribute,
    to_item,
    vulnerability_from_item,
)
from vulnstats.models import (
    AssetType,
    Entity,
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
    RunRecord,
    RunStatus,
    StateItem,
)

VULNERABILITY: dict[str, Any] = {
    "id": "vuln-1",
    "name": "CVE-2024-3094",
    "description": "xz backdoor — ünïcode",
    "integrationId": "snyk",
    "targetId": "asset-7",
    "packageIdentifier": "pkg:deb/xz-utils@5.6.0",
    "firstDetectedDate": "2024-04-01T00:00:00.000Z",
    "lastDetectedDate": "2024-04-02T08:30:00.5+02:00",
    "remediateByDate": "2024-04-16T00:00:00.000Z",
    "severity": "critical",
    "cvssSeverityScore": 10,
    "scannerScore": 9.5,
    "isFixable": True,
    "deactivateMetadata": None,
    "someFutureField": {"nested": [1, 2, None]},
}

MINIMAL_VULNERABILITY: dict[str, Any] = {
    "id": "vuln-2",
    "name": "CVE-2020-1",
    "integrationId": "inspector",
    "targetId": "asset-8",
    "firstDetectedDate": "2023-01-01T00:00:00Z",
    "remediateByDate": None,
    "severity": "LOW",
    "isFixable": False,
    "deactivateMetadata": {
        "isVulnDeactivatedIndefinitely": False,
        "deactivatedUntilDate": "2025-01-01T00:00:00Z",
    },
}

REMEDIATION: dict[str, Any] = {
    "id": "rem-1",
    "vulnerabilityId": "vuln-9",
    "vulnerableAssetId": "asset-3",
    "severity": "high",
    "detectedDate": "2024-01-01T00:00:00.000Z",
    "slaDeadlineDate": "2024-01-31T00:00:00.000Z",
    "remediationDate": "2024-01-21T12:00:00.000Z",
}

ASSET: dict[str, Any] = {
    "id": "asset-7",
    "name": "acme/service-00007",
    "assetType": "CONTAINER_REPOSITORY_IMAGE",
    "hasBeenScanned": True,
    "imageScanTag": None,
    "scanners": [{"integrationId": "snyk"}],
}


def state(raw: dict[str, Any], entity: Entity, asset_type: AssetType | None = None) -> StateItem:
    if entity == "vulnerabilities":
        record: Any = parse_vulnerability(raw).with_asset_type(asset_type)
    elif entity == "remediations":
        record = parse_remediation(raw)
    else:
        record = parse_asset(raw)
    return StateItem(record=record, raw=raw, content_hash=content_hash(raw))


def test_given_nested_values_when_round_tripped_then_the_same_values_come_back() -> None:
    value = {"s": "x", "i": -12, "f": 1.5, "b": False, "n": None, "l": [1, "a", {"m": True}]}

    attribute = to_attribute(value)

    assert attribute["M"]["b"] == {"BOOL": False}
    assert attribute["M"]["i"] == {"N": "-12"}
    assert attribute["M"]["n"] == {"NULL": True}
    assert from_attribute(attribute) == value


def test_given_values_dynamodb_cannot_hold_when_serialised_then_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        to_attribute(math.nan)
    with pytest.raises(TypeError, match="set"):
        to_attribute({1, 2})


def test_given_none_fields_when_building_an_item_then_they_are_absent() -> None:
    assert to_item({"a": "x", "b": None}) == {"a": {"S": "x"}}


def test_given_times_in_any_zone_when_formatted_then_fixed_width_utc_that_sorts_as_time() -> None:
    plus_two = timezone(timedelta(hours=2))
    early = datetime(2024, 1, 1, 1, 0, tzinfo=plus_two)  # 2023-12-31T23:00Z
    late = datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)

    assert format_datetime(early) == "2023-12-31T23:00:00.000000Z"
    assert format_datetime(late) == "2024-01-01T00:00:00.500000Z"
    assert format_datetime(early) < format_datetime(late)
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2024, 1, 1))


def test_given_a_finding_when_stored_then_item_has_the_documented_attributes() -> None:
    item = state_item("vulnerabilities", state(VULNERABILITY, "vulnerabilities", AssetType.SERVER))
    plain = from_item(item)

    assert plain["pk"] == "VULN"
    assert plain["sk"] == "vuln-1"
    assert plain["h"] == content_hash(VULNERABILITY)
    assert plain["severity"] == "CRITICAL"
    assert plain["integrationId"] == "snyk"
    assert plain["assetId"] == "asset-7"
    assert plain["assetType"] == "SERVER"
    assert plain["isFixable"] is True
    assert plain["firstDetectedDate"] == "2024-04-01T00:00:00.000000Z"
    assert plain["remediateByDate"] == "2024-04-16T00:00:00.000000Z"
    assert plain["deactivated"] is False
    assert plain["name"] == "CVE-2024-3094"
    assert plain["packageIdentifier"] == "pkg:deb/xz-utils@5.6.0"
    assert plain["gsi1pk"] == "SEV#CRITICAL"
    assert plain["gsi1sk"] == "2024-04-16T00:00:00.000000Z#vuln-1"
    assert json.loads(plain["data"]) == VULNERABILITY


def test_given_a_finding_when_round_tripped_then_the_same_model_with_its_asset_type() -> None:
    given = state(VULNERABILITY, "vulnerabilities", AssetType.CONTAINER)

    back = vulnerability_from_item(state_item("vulnerabilities", given))

    assert back == given.record
    assert back.asset_type is AssetType.CONTAINER


def test_given_a_deactivated_finding_without_sla_when_stored_then_last_on_index_and_exact() -> None:
    given = state(MINIMAL_VULNERABILITY, "vulnerabilities")

    item = state_item("vulnerabilities", given)
    back = vulnerability_from_item(item)

    assert item["gsi1sk"] == {"S": "~#vuln-2"}
    assert "remediateByDate" not in item
    assert "assetType" not in item
    assert "packageIdentifier" not in item
    assert item["deactivated"] == {"BOOL": True}
    assert item["deactivatedUntil"] == {"S": "2025-01-01T00:00:00.000000Z"}
    assert back == given.record
    assert back.asset_type is None
    assert back.is_deactivated_at(datetime(2024, 6, 1, tzinfo=UTC))
    assert not back.is_deactivated_at(datetime(2025, 6, 1, tzinfo=UTC))


def test_given_a_remediation_when_round_tripped_then_indexed_by_remediation_date() -> None:
    given = state(REMEDIATION, "remediations")

    item = state_item("remediations", given)

    assert from_item(item) | {"data": None} == {
        "pk": "REM",
        "sk": "rem-1",
        "h": content_hash(REMEDIATION),
        "severity": "HIGH",
        "detectedDate": "2024-01-01T00:00:00.000000Z",
        "slaDeadlineDate": "2024-01-31T00:00:00.000000Z",
        "remediationDate": "2024-01-21T12:00:00.000000Z",
        "vulnerabilityId": "vuln-9",
        "assetId": "asset-3",
        "gsi1pk": "REMDATE",
        "gsi1sk": "2024-01-21T12:00:00.000000Z#rem-1",
        "data": None,
    }
    assert remediation_from_item(item) == given.record


def test_given_an_unremediated_remediation_when_stored_then_not_on_the_date_index() -> None:
    raw = REMEDIATION | {"remediationDate": None, "slaDeadlineDate": None}

    item = state_item("remediations", state(raw, "remediations"))

    assert "gsi1pk" not in item
    assert "remediationDate" not in item
    assert remediation_from_item(item) == parse_remediation(raw)


def test_given_an_asset_when_round_tripped_then_the_same_model() -> None:
    given = state(ASSET, "assets")

    item = state_item("assets", given)

    assert from_item(item)["assetType"] == "CONTAINER_REPOSITORY_IMAGE"
    assert from_item(item)["name"] == "acme/service-00007"
    assert record_from_item("assets", item) == given.record


def test_given_a_record_of_another_entity_when_stored_then_type_error() -> None:
    with pytest.raises(TypeError, match="Asset"):
        state_item("vulnerabilities", state(ASSET, "assets"))


def test_given_an_item_whose_data_is_damaged_when_read_then_storage_error_names_it() -> None:
    item = state_item("remediations", state(REMEDIATION, "remediations"))
    item["data"] = {"S": "{not json"}

    with pytest.raises(StorageError, match="REM/rem-1"):
        remediation_from_item(item)


def test_given_keys_then_partition_names_follow_the_design() -> None:
    assert state_key("assets", "a") == {"pk": {"S": "ASSET"}, "sk": {"S": "a"}}
    assert snapshot_key() == {"pk": {"S": "STATS"}, "sk": {"S": "LATEST"}}
    assert snapshot_key(date(2026, 1, 2))["sk"] == {"S": "DAY#2026-01-02"}
    assert lock_item("r1", 100)["lease_until"] == {"N": "100"}


def test_given_a_finished_run_when_round_tripped_then_equal() -> None:
    started = datetime(2026, 11, 22, 5, 0, 1, 123456, tzinfo=UTC)
    run = RunRecord(
        run_id="20261122T050001Z-0badcafe",
        status=RunStatus.SUCCEEDED,
        trigger="scheduled",
        started_at=started,
        updated_at=started + timedelta(minutes=3),
        reason="nightly",
        finished_at=started + timedelta(minutes=4),
        checkpoint=Checkpoint(Phase.DONE, None, 7),
        counts=Counts(fetched=10, written=4, unchanged=6, pages=3),
        continuations=2,
        error=None,
    )

    item = run_item(run)

    assert item["checkpoint"]["M"]["cursor"] == {"NULL": True}
    assert item["counts"]["M"]["written"] == {"N": "4"}
    assert item["started_at"] == {"S": "2026-11-22T05:00:01.123456Z"}
    assert "error" not in item
    assert run_from_item(item) == run


def test_given_a_failed_running_run_when_round_tripped_then_cursor_and_error_kept() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    run = RunRecord(
        run_id="20261122T000000Z-00000001",
        status=RunStatus.FAILED,
        trigger="manual",
        started_at=now,
        updated_at=now,
        checkpoint=Checkpoint(Phase.VULNERABILITIES, "cursor==", 3),
        error="upstream down",
    )

    assert run_from_item(run_item(run)) == run


def test_given_last_complete_when_round_tripped_then_equal() -> None:
    last = LastComplete(
        run_id="r",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
    )

    item = last_complete_item(last)

    assert item["pk"] == {"S": "META"}
    assert item["sk"] == {"S": "LAST_COMPLETE"}
    assert last_complete_from_item(item) == last


def test_given_a_last_complete_run_that_quarantined_remediations_then_its_window_is_kept() -> None:
    last = LastComplete(
        run_id="r",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        remediations_retry_from=datetime(2025, 12, 30, tzinfo=UTC),
    )

    assert last_complete_from_item(last_complete_item(last)) == last


def test_given_a_snapshot_when_stored_then_latest_and_day_items_hold_the_same_content() -> None:
    computed = datetime(2026, 11, 22, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    snapshot = {"schemaVersion": 2, "open": {"CRITICAL": 3}, "mean_days": 1.25}
    with_deactivated = {"schemaVersion": 2, "open": {"CRITICAL": 4}, "mean_days": 1.25}

    latest, day = snapshot_items(
        snapshot, run_id="r9", computed_at=computed, with_deactivated=with_deactivated
    )

    assert latest["sk"] == {"S": "LATEST"}
    assert day["sk"] == {"S": "DAY#2026-11-23"}  # the UTC day
    assert snapshot_from_item(latest) == {
        "day": None,
        "run_id": "r9",
        "computed_at": "2026-11-23T01:30:00.000000Z",
        "snapshot": snapshot,
        "snapshot_with_deactivated": with_deactivated,
    }
    assert snapshot_from_item(day)["day"] == "2026-11-23"
    # an item stored without the second snapshot (an earlier version) reads as None
    alone = snapshot_items(snapshot, run_id="r9", computed_at=computed)[0]
    assert snapshot_from_item(alone)["snapshot_with_deactivated"] is None
