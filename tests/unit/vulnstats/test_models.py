"""Models: every field parsed, each bad record rejected with a reason, stable content hash."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from localstage.vanta_data import Dataset
from vulnstats.errors import InvalidRecordError, VulnStatsError
from vulnstats.models import (
    PARSERS,
    Asset,
    AssetType,
    Remediation,
    Severity,
    Vulnerability,
    content_hash,
    parse_asset,
    parse_datetime,
    parse_remediation,
    parse_vulnerability,
)

VULNERABILITY: dict[str, Any] = {
    "id": "vuln-1",
    "name": "CVE-2024-3094",
    "description": "xz backdoor",
    "integrationId": "snyk",
    "targetId": "asset-7",
    "externalURL": "https://advisories.example/CVE-2024-3094",
    "packageIdentifier": "pkg:deb/xz-utils@5.6.0",
    "vulnerabilityType": "COMMON",
    "firstDetectedDate": "2024-04-01T00:00:00.000Z",
    "sourceDetectedDate": "2024-03-31T23:00:00Z",
    "lastDetectedDate": "2024-04-02T08:30:00.5+02:00",
    "remediateByDate": "2024-04-16T00:00:00.000Z",
    "severity": "critical",
    "cvssSeverityScore": 10,
    "scannerScore": 9.5,
    "isFixable": True,
    "relatedVulns": ["CVE-2024-1"],
    "relatedUrls": [],
    "scanSource": "IMAGE",
    "fixedVersion": "5.6.1",
    "deactivateMetadata": None,
    "someFutureField": {"nested": [1, 2]},
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
    "imageScanTag": "v1.2.0",
    "scanners": [
        {"resourceId": "r1", "integrationId": "snyk", "targetId": "asset-7"},
        {"resourceId": "r2", "integrationId": "aws_inspector", "targetId": "asset-7"},
        {"resourceId": "r3", "integrationId": None, "targetId": "asset-7"},
        {"resourceId": "r4", "integrationId": "snyk", "targetId": "asset-7"},
    ],
}


def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of ``base`` with fields replaced; a value of ``...`` removes the field."""
    raw = copy.deepcopy(base)
    for key, value in fields.items():
        if value is ...:
            del raw[key]
        else:
            raw[key] = value
    return raw


# ----- vulnerabilities -----


def test_vulnerability_parses_every_field() -> None:
    vuln = parse_vulnerability(VULNERABILITY)
    assert vuln == Vulnerability(
        id="vuln-1",
        name="CVE-2024-3094",
        severity=Severity.CRITICAL,
        integration_id="snyk",
        target_id="asset-7",
        is_fixable=True,
        first_detected_date=datetime(2024, 4, 1, tzinfo=UTC),
        remediate_by_date=datetime(2024, 4, 16, tzinfo=UTC),
        description="xz backdoor",
        package_identifier="pkg:deb/xz-utils@5.6.0",
        vulnerability_type="COMMON",
        external_url="https://advisories.example/CVE-2024-3094",
        source_detected_date=datetime(2024, 3, 31, 23, tzinfo=UTC),
        last_detected_date=datetime(2024, 4, 2, 6, 30, 0, 500000, tzinfo=UTC),
        cvss_severity_score=10.0,
        scanner_score=9.5,
        fixed_version="5.6.1",
        scan_source="IMAGE",
    )
    assert vuln.asset_id == "asset-7"
    assert vuln.last_detected_date is not None
    assert vuln.last_detected_date.tzinfo is UTC


def test_nullable_and_absent_optional_fields_become_none() -> None:
    raw = changed(
        VULNERABILITY,
        remediateByDate=None,
        packageIdentifier=None,
        cvssSeverityScore=None,
        scanSource=...,
        fixedVersion=...,
    )
    vuln = parse_vulnerability(raw)
    assert vuln.remediate_by_date is None
    assert vuln.package_identifier is None
    assert vuln.cvss_severity_score is None
    assert vuln.scan_source is None
    assert vuln.fixed_version is None
    assert not vuln.is_overdue_at(datetime(2030, 1, 1, tzinfo=UTC))


def test_asset_type_is_joined_from_the_asset() -> None:
    vuln = parse_vulnerability(VULNERABILITY)
    asset = parse_asset(ASSET)
    joined = vuln.with_asset_type(asset.asset_type)
    assert joined.asset_type is AssetType.CONTAINER_REPOSITORY_IMAGE
    assert vuln.asset_type is None


def test_overdue_compares_datetimes_not_strings() -> None:
    vuln = parse_vulnerability(changed(VULNERABILITY, remediateByDate="2024-04-16T01:00:00+02:00"))
    # 2024-04-15T23:00Z: a string comparison would call this later than the Z date below
    assert vuln.is_overdue_at(datetime(2024, 4, 15, 23, 30, tzinfo=UTC))
    assert not vuln.is_overdue_at(datetime(2024, 4, 15, 22, 30, tzinfo=UTC))


@pytest.mark.parametrize("severity", ["low", "Medium", "HIGH", " critical "])
def test_severity_is_normalised_from_any_case(severity: str) -> None:
    vuln = parse_vulnerability(changed(VULNERABILITY, severity=severity))
    assert vuln.severity is Severity(severity.strip().upper())


def test_deactivation_metadata_is_read() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    meta = {
        "isVulnDeactivatedIndefinitely": False,
        "deactivatedUntilDate": "2024-07-01T00:00:00.000Z",
        "deactivationReason": "Accepted risk",
        "deactivatedOnDate": "2024-05-01T00:00:00.000Z",
        "deactivatedBy": "someone@example.com",
    }
    until = parse_vulnerability(changed(VULNERABILITY, deactivateMetadata=meta))
    forever = parse_vulnerability(
        changed(
            VULNERABILITY,
            deactivateMetadata={
                **meta,
                "isVulnDeactivatedIndefinitely": True,
                "deactivatedUntilDate": None,
            },
        )
    )
    active = parse_vulnerability(VULNERABILITY)
    assert until.deactivated
    assert until.deactivated_until == datetime(2024, 7, 1, tzinfo=UTC)
    assert until.is_deactivated_at(now)
    assert not until.is_deactivated_at(now + timedelta(days=60))
    assert forever.deactivated_indefinitely
    assert forever.is_deactivated_at(now + timedelta(days=3650))
    assert not active.deactivated
    assert not active.is_deactivated_at(now)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"severity": "SEVERE"}, "severity: unknown value 'SEVERE'"),
        ({"severity": ...}, "severity: missing"),
        ({"severity": 3}, "severity: expected string, got int"),
        ({"firstDetectedDate": ...}, "firstDetectedDate: missing"),
        ({"firstDetectedDate": None}, "firstDetectedDate: null"),
        (
            {"firstDetectedDate": 1711929600},
            "firstDetectedDate: expected RFC 3339 date-time string, got int",
        ),
        (
            {"firstDetectedDate": "2024-04-01T00:00:00"},
            "firstDetectedDate: not an RFC 3339 date-time: '2024-04-01T00:00:00'",
        ),
        (
            {"remediateByDate": "next tuesday"},
            "remediateByDate: not an RFC 3339 date-time: 'next tuesday'",
        ),
        ({"isFixable": "yes"}, "isFixable: expected bool, got str"),
        ({"isFixable": 1}, "isFixable: expected bool, got int"),
        ({"isFixable": ...}, "isFixable: missing"),
        ({"cvssSeverityScore": "9.8"}, "cvssSeverityScore: expected number or null, got str"),
        ({"cvssSeverityScore": True}, "cvssSeverityScore: expected number or null, got bool"),
        ({"targetId": ...}, "targetId: missing"),
        ({"integrationId": ""}, "integrationId: empty string"),
        ({"name": None}, "name: expected string, got null"),
        ({"packageIdentifier": 5}, "packageIdentifier: expected string or null, got int"),
        (
            {"deactivateMetadata": "yes"},
            "deactivateMetadata: expected object or null, got str",
        ),
    ],
)
def test_bad_vulnerability_is_rejected_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        parse_vulnerability(changed(VULNERABILITY, **fields))
    assert caught.value.reason == reason
    assert caught.value.record_id == "vuln-1"
    assert caught.value.entity == "vulnerabilities"
    assert str(caught.value) == f"invalid record vuln-1 from vulnerabilities: {reason}"
    assert isinstance(caught.value, VulnStatsError)


def test_record_without_a_usable_id_is_rejected_without_one() -> None:
    with pytest.raises(InvalidRecordError) as caught:
        parse_vulnerability(changed(VULNERABILITY, id=...))
    assert caught.value.record_id is None
    assert caught.value.reason == "id: missing"


@pytest.mark.parametrize("raw", ["a string", 7, None, ["list"]])
def test_a_record_that_is_not_an_object_is_rejected(raw: Any) -> None:
    for parse in (parse_vulnerability, parse_remediation, parse_asset):
        with pytest.raises(InvalidRecordError, match="record: expected object"):
            parse(raw)


def test_unknown_fields_are_ignored() -> None:
    raw = changed(VULNERABILITY, brandNewField=[1, 2, 3])
    assert parse_vulnerability(raw) == parse_vulnerability(VULNERABILITY)


# ----- dates -----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-01T00:00:00.000Z", datetime(2024, 4, 1, tzinfo=UTC)),
        ("2024-04-01T00:00:00Z", datetime(2024, 4, 1, tzinfo=UTC)),
        ("2024-04-01t00:00:00z", datetime(2024, 4, 1, tzinfo=UTC)),
        ("2024-04-01T00:00:00.123456789Z", datetime(2024, 4, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-04-01T05:30:00+05:30", datetime(2024, 4, 1, tzinfo=UTC)),
        ("2024-03-31T19:00:00.1-05:00", datetime(2024, 4, 1, 0, 0, 0, 100000, tzinfo=UTC)),
    ],
)
def test_rfc3339_dates_parse_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2024-04-01", "2024-04-01T00:00:00", "yesterday", ""])
def test_non_rfc3339_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message varies with the input
        parse_datetime(text)


def test_offsets_are_converted_to_utc() -> None:
    parsed = parse_datetime("2024-04-01T02:00:00+02:00")
    assert parsed.tzinfo is UTC
    assert parsed == datetime(2024, 4, 1, tzinfo=timezone(timedelta(hours=0)))


# ----- remediations -----


def test_remediation_parses_every_field() -> None:
    rem = parse_remediation(REMEDIATION)
    assert rem == Remediation(
        id="rem-1",
        vulnerability_id="vuln-9",
        vulnerable_asset_id="asset-3",
        severity=Severity.HIGH,
        detected_date=datetime(2024, 1, 1, tzinfo=UTC),
        sla_deadline_date=datetime(2024, 1, 31, tzinfo=UTC),
        remediation_date=datetime(2024, 1, 21, 12, tzinfo=UTC),
    )
    assert rem.time_to_remediate == timedelta(days=20, hours=12)
    assert rem.on_time is True


def test_remediation_on_time_needs_a_deadline_and_a_date() -> None:
    late = parse_remediation(changed(REMEDIATION, remediationDate="2024-02-01T00:00:00Z"))
    no_sla = parse_remediation(changed(REMEDIATION, slaDeadlineDate=None))
    open_one = parse_remediation(changed(REMEDIATION, remediationDate=None))
    assert late.on_time is False
    assert no_sla.on_time is None
    assert open_one.on_time is None
    assert open_one.time_to_remediate is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"vulnerabilityId": ...}, "vulnerabilityId: missing"),
        ({"severity": "severe"}, "severity: unknown value 'severe'"),
        (
            {"detectedDate": 1711929600},
            "detectedDate: expected RFC 3339 date-time string, got int",
        ),
        ({"slaDeadlineDate": "soon"}, "slaDeadlineDate: not an RFC 3339 date-time: 'soon'"),
    ],
)
def test_bad_remediation_is_rejected_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        parse_remediation(changed(REMEDIATION, **fields))
    assert (caught.value.record_id, caught.value.reason) == ("rem-1", reason)
    assert caught.value.entity == "remediations"


# ----- assets -----


def test_asset_parses_every_field() -> None:
    assert parse_asset(ASSET) == Asset(
        id="asset-7",
        name="acme/service-00007",
        asset_type=AssetType.CONTAINER_REPOSITORY_IMAGE,
        has_been_scanned=True,
        image_scan_tag="v1.2.0",
        integration_ids=("snyk", "aws_inspector"),
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"assetType": ...}, "assetType: missing"),
        ({"assetType": "TOASTER"}, "assetType: unknown value 'TOASTER'"),
        ({"hasBeenScanned": "yes"}, "hasBeenScanned: expected bool, got str"),
        ({"scanners": "none"}, "scanners: expected array, got str"),
        ({"scanners": [7]}, "scanners[0]: expected object, got int"),
        (
            {"scanners": [{"integrationId": 7}]},
            "scanners[0].integrationId: expected string, got int",
        ),
    ],
)
def test_bad_asset_is_rejected_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        parse_asset(changed(ASSET, **fields))
    assert (caught.value.record_id, caught.value.reason) == ("asset-7", reason)


# ----- the generated data set (the stand-in's oracle) -----


def test_every_generated_record_parses() -> None:
    data = Dataset(seed=5, vulnerability_count=300, asset_count=30, remediation_count=120)
    vulns = [parse_vulnerability(r) for r in data.iter_vulnerabilities()]
    rems = [parse_remediation(r) for r in data.iter_remediations()]
    assets = [parse_asset(r) for r in data.iter_assets()]
    assert len(vulns) == 300
    assert any(v.remediate_by_date is None for v in vulns)
    assert any(v.deactivated for v in vulns)
    assert {r.severity for r in rems} == set(Severity)
    assert {a.id for a in assets} >= {v.target_id for v in vulns}
    assert PARSERS["assets"](data.iter_assets().__next__()) == assets[0]


# ----- immutability and hashing -----


def test_models_are_frozen_and_slotted() -> None:
    vuln = parse_vulnerability(VULNERABILITY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vuln.severity = Severity.LOW  # type: ignore[misc]
    assert not hasattr(vuln, "__dict__")


def test_content_hash_is_stable_under_key_order() -> None:
    reordered = dict(reversed(list(VULNERABILITY.items())))
    reordered["someFutureField"] = {"nested": [1, 2]}
    assert content_hash(reordered) == content_hash(VULNERABILITY)
    assert content_hash({"a": {"y": 1, "x": 2}}) == content_hash({"a": {"x": 2, "y": 1}})


def test_content_hash_changes_with_content() -> None:
    assert content_hash(changed(VULNERABILITY, scannerScore=9.6)) != content_hash(VULNERABILITY)
    assert content_hash({"a": [1, 2]}) != content_hash({"a": [2, 1]})
    assert len(content_hash(VULNERABILITY)) == 32
