"""The finding listing on DynamoDB (moto, in-process): filters, cursors and exactly-once pages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from vulnstats.dynamo import DynamoStore
from vulnstats.models import AssetType, Severity, Vulnerability, content_hash, parse_vulnerability
from vulnstats.ports import StateItem
from vulnstats.queries import (
    DynamoReader,
    FindingFilter,
    InvalidCursorError,
    decode_cursor,
    encode_cursor,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

NOW = datetime(2026, 11, 22, 9, 15, 30, 123000, tzinfo=UTC)
TABLE = "state"
INTEGRATIONS = ("aws", "github", "snyk")
TYPES = (AssetType.SERVER, AssetType.CONTAINER, AssetType.CODE_REPOSITORY)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _raw(n: int) -> dict[str, Any]:
    """Finding n: deadlines spread from 40 days ago to 400 days ahead, some without an SLA,
    some exactly at now, some deactivated (indefinitely, lapsed, or until later)."""
    deadline: datetime | None = NOW + timedelta(days=(n * 37) % 440 - 40, hours=n % 5)
    if n % 7 == 0:
        deadline = None
    if n % 11 == 0:
        deadline = NOW
    deactivate: dict[str, Any] | None = None
    if n % 9 == 1:
        deactivate = {"isVulnDeactivatedIndefinitely": True}
    elif n % 9 == 2:
        deactivate = {
            "isVulnDeactivatedIndefinitely": False,
            "deactivatedUntilDate": _iso(NOW - timedelta(days=2)),
        }
    elif n % 9 == 3:
        deactivate = {
            "isVulnDeactivatedIndefinitely": False,
            "deactivatedUntilDate": _iso(NOW + timedelta(days=2)),
        }
    return {
        "id": f"vuln-{n:03d}",
        "name": f"CVE-2026-{n:04d}",
        "integrationId": INTEGRATIONS[n % 3],
        "targetId": f"asset-{n % 4}",
        "isFixable": n % 2 == 0,
        "severity": list(Severity)[n % 4].value,
        "firstDetectedDate": _iso(NOW - timedelta(days=100)),
        "remediateByDate": None if deadline is None else _iso(deadline),
        "deactivateMetadata": deactivate,
    }


FINDINGS: list[Vulnerability] = [
    parse_vulnerability(_raw(n)).with_asset_type(TYPES[n % 3] if n % 10 else None)
    for n in range(90)
]


@pytest.fixture(scope="module")
def reader() -> Iterator[DynamoReader]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in ("pk", "sk", "gsi1pk", "gsi1sk")
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        store = DynamoStore(TABLE, client=client)
        raws = [_raw(n) for n in range(90)]
        store.write(
            "vulnerabilities",
            [
                StateItem(record, raw, content_hash(raw))
                for record, raw in zip(FINDINGS, raws, strict=True)
            ],
        )
        # Small DynamoDB pages: a listing must stitch several Query calls together.
        yield DynamoReader(store, page_size=7)


def _expected(filters: FindingFilter, now: datetime) -> set[str]:
    """The model's own answer, written from the definitions (not from the query code)."""
    out = set()
    for v in FINDINGS:
        rbd = v.remediate_by_date
        checks = [
            filters.severity is None or v.severity is filters.severity,
            filters.overdue is None or v.is_overdue_at(now) is filters.overdue,
            filters.due_within_days is None
            or (rbd is not None and now <= rbd <= now + timedelta(days=filters.due_within_days)),
            filters.integration_id is None or v.integration_id == filters.integration_id,
            filters.asset_type is None or v.asset_type is filters.asset_type,
            filters.fixable is None or v.is_fixable is filters.fixable,
            filters.include_deactivated or not v.is_deactivated_at(now),
        ]
        if all(checks):
            out.add(v.id)
    return out


def _walk(
    reader: DynamoReader, filters: FindingFilter, limit: int, *, full_pages: bool = True
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(200):
        page = reader.list_findings(filters, limit=limit, cursor=cursor, now=NOW)
        assert len(page.items) <= limit
        seen += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
        if full_pages:
            assert len(page.items) == limit  # only the last page is short
    raise AssertionError("the walk did not end")


filter_strategy = st.builds(
    FindingFilter,
    severity=st.none() | st.sampled_from(list(Severity)),
    overdue=st.none() | st.booleans(),
    due_within_days=st.none() | st.integers(1, 365),
    integration_id=st.none() | st.sampled_from(INTEGRATIONS),
    asset_type=st.none() | st.sampled_from(TYPES),
    fixable=st.none() | st.booleans(),
    include_deactivated=st.booleans(),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=filter_strategy, limit=st.integers(1, 30))
def test_walking_all_pages_yields_each_match_exactly_once(
    reader: DynamoReader, filters: FindingFilter, limit: int
) -> None:
    seen = _walk(reader, filters, limit)
    assert len(seen) == len(set(seen))
    assert set(seen) == _expected(filters, NOW)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=filter_strategy, limit=st.integers(1, 30), max_reads=st.integers(1, 3))
def test_a_spent_read_budget_ends_the_page_early_but_loses_nothing(
    reader: DynamoReader, filters: FindingFilter, limit: int, max_reads: int
) -> None:
    # given a reader allowed only a few Query calls per request (7-item DynamoDB pages)
    tight = DynamoReader(reader.store, page_size=7, max_reads=max_reads)
    # when every page is walked / then each match comes exactly once
    seen = _walk(tight, filters, limit, full_pages=False)
    assert len(seen) == len(set(seen))
    assert set(seen) == _expected(filters, NOW)


def test_without_severity_the_listing_is_by_id(reader: DynamoReader) -> None:
    seen = _walk(reader, FindingFilter(include_deactivated=True), 500)
    assert seen == sorted(f.id for f in FINDINGS)


def test_with_severity_the_listing_is_by_deadline_then_no_sla_last(reader: DynamoReader) -> None:
    page = reader.list_findings(
        FindingFilter(severity=Severity.HIGH, include_deactivated=True),
        limit=500,
        cursor=None,
        now=NOW,
    )
    deadlines = [item["remediateByDate"] or "~" for item in page.items]
    assert deadlines == sorted(deadlines)
    assert page.next_cursor is None


def test_a_finding_due_exactly_now_is_due_not_overdue(reader: DynamoReader) -> None:
    at_now = {f.id for f in FINDINGS if f.remediate_by_date == NOW}
    overdue = _walk(reader, FindingFilter(overdue=True, include_deactivated=True), 500)
    assert not at_now & set(overdue)
    due = reader.list_findings(
        FindingFilter(due_within_days=1, include_deactivated=True), limit=500, cursor=None, now=NOW
    )
    assert at_now
    assert at_now <= {item["id"] for item in due.items}


def test_items_carry_the_fields_clients_filter_on(reader: DynamoReader) -> None:
    page = reader.list_findings(FindingFilter(), limit=1, cursor=None, now=NOW)
    assert set(page.items[0]) >= {
        "id",
        "name",
        "severity",
        "integrationId",
        "assetId",
        "assetType",
        "isFixable",
        "firstDetectedDate",
        "remediateByDate",
        "overdue",
        "deactivated",
        "packageIdentifier",
    }


def test_get_finding_returns_the_raw_record_or_none(reader: DynamoReader) -> None:
    found = reader.get_finding("vuln-004", NOW)
    assert found is not None
    assert found["record"]["name"] == "CVE-2026-0004"
    assert reader.get_finding("vuln-999", NOW) is None


def test_a_cursor_is_bound_to_its_filters() -> None:
    high = FindingFilter(severity=Severity.HIGH)
    cursor = encode_cursor(
        "gsi1",
        {"gsi1pk": "SEV#HIGH", "gsi1sk": "2026#x", "pk": "VULN", "sk": "x"},
        high.fingerprint(),
    )
    assert decode_cursor(cursor, high)["sk"] == "x"
    with pytest.raises(InvalidCursorError, match="does not match these filters"):
        decode_cursor(cursor, FindingFilter(severity=Severity.HIGH, fixable=True))
    with pytest.raises(InvalidCursorError, match="does not match these filters"):
        decode_cursor(cursor, FindingFilter())


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'{"v":1,"i":"main","k":{"pk":"VULN"},"f":"x"}').decode(),
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "v": 1,
                    "i": "main",
                    "k": {"pk": "RUN", "sk": "a"},
                    "f": FindingFilter().fingerprint(),
                }
            ).encode()
        ).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"v": 1, "i": "scan", "k": {}, "f": FindingFilter().fingerprint()}).encode()
        ).decode(),
    ],
)
def test_a_forged_or_broken_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError, match="not a cursor issued by this API"):
        decode_cursor(cursor, FindingFilter())


def test_contradictory_filters_match_nothing_without_a_query(reader: DynamoReader) -> None:
    page = reader.list_findings(
        FindingFilter(overdue=True, due_within_days=5), limit=10, cursor=None, now=NOW
    )
    assert page.items == []
    assert page.next_cursor is None


def test_lock_holder_only_while_the_lease_runs(reader: DynamoReader) -> None:
    assert reader.lock_holder(NOW) is None
    reader.store.acquire_lock("20261122T091500Z-lock0001", NOW, 60)
    try:
        assert reader.lock_holder(NOW + timedelta(seconds=30)) == "20261122T091500Z-lock0001"
        assert reader.lock_holder(NOW + timedelta(seconds=61)) is None
    finally:
        reader.store.release_lock("20261122T091500Z-lock0001")
