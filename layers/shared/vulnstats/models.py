"""Typed records of the three Vanta entities, their validation and a content hash of raw records."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from vulnstats.errors import InvalidRecordError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "PARSERS",
    "Asset",
    "AssetType",
    "Entity",
    "Remediation",
    "Severity",
    "Vulnerability",
    "content_hash",
    "parse_asset",
    "parse_datetime",
    "parse_remediation",
    "parse_vulnerability",
]

type Entity = Literal["vulnerabilities", "remediations", "assets"]


class Severity(enum.StrEnum):
    """Vanta severities; upstream case varies (remediations use lower case), so parse with
    :meth:`parse`."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @classmethod
    def parse(cls, value: str) -> Severity:
        """The severity named by ``value`` in any case; ValueError when it names none."""
        return cls(value.strip().upper())


class AssetType(enum.StrEnum):
    """Kinds of vulnerable asset in the contract."""

    SERVER = "SERVER"
    SERVERLESS_FUNCTION = "SERVERLESS_FUNCTION"
    CONTAINER = "CONTAINER"
    CONTAINER_REPOSITORY = "CONTAINER_REPOSITORY"
    CONTAINER_REPOSITORY_IMAGE = "CONTAINER_REPOSITORY_IMAGE"
    CODE_REPOSITORY = "CODE_REPOSITORY"
    MANIFEST_FILE = "MANIFEST_FILE"
    WORKSTATION = "WORKSTATION"


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """An open (or deactivated) finding, with the fields the statistics and the API use.

    ``asset_type`` is not part of the upstream record: it comes from the asset named by
    ``target_id`` (see :meth:`with_asset_type`).
    """

    id: str
    name: str
    severity: Severity
    integration_id: str
    target_id: str
    is_fixable: bool
    first_detected_date: datetime
    remediate_by_date: datetime | None
    description: str | None = None
    package_identifier: str | None = None
    vulnerability_type: str | None = None
    external_url: str | None = None
    source_detected_date: datetime | None = None
    last_detected_date: datetime | None = None
    cvss_severity_score: float | None = None
    scanner_score: float | None = None
    fixed_version: str | None = None
    scan_source: str | None = None
    deactivated: bool = False
    deactivated_indefinitely: bool = False
    deactivated_until: datetime | None = None
    asset_type: AssetType | None = None

    @property
    def asset_id(self) -> str:
        """The vulnerable asset's id (the upstream ``targetId``)."""
        return self.target_id

    def with_asset_type(self, asset_type: AssetType | None) -> Vulnerability:
        """A copy joined with its asset's type."""
        return replace(self, asset_type=asset_type)

    def is_deactivated_at(self, now: datetime) -> bool:
        """Whether the finding is deactivated at ``now`` (a lapsed deactivation is not)."""
        if not self.deactivated:
            return False
        if self.deactivated_indefinitely or self.deactivated_until is None:
            return True
        return self.deactivated_until > now

    def is_overdue_at(self, now: datetime) -> bool:
        """Whether the SLA deadline has passed at ``now`` (never, without an SLA)."""
        return self.remediate_by_date is not None and self.remediate_by_date < now


@dataclass(frozen=True, slots=True)
class Remediation:
    """A closed finding: when it was detected, its SLA deadline and when it was remediated."""

    id: str
    vulnerability_id: str
    vulnerable_asset_id: str
    severity: Severity
    detected_date: datetime
    sla_deadline_date: datetime | None
    remediation_date: datetime | None

    @property
    def time_to_remediate(self) -> timedelta | None:
        """``remediationDate - detectedDate``, or None while not remediated."""
        if self.remediation_date is None:
            return None
        return self.remediation_date - self.detected_date

    @property
    def on_time(self) -> bool | None:
        """``remediationDate <= slaDeadlineDate``; None without a deadline or a remediation."""
        if self.remediation_date is None or self.sla_deadline_date is None:
            return None
        return self.remediation_date <= self.sla_deadline_date


@dataclass(frozen=True, slots=True)
class Asset:
    """A vulnerable asset: its type and the scanners (integration ids) that report it."""

    id: str
    name: str
    asset_type: AssetType
    has_been_scanned: bool
    image_scan_tag: str | None = None
    integration_ids: tuple[str, ...] = ()


# ----- field readers: each raises _FieldError(reason), turned into InvalidRecordError -----


class _FieldError(Exception):
    """A reason naming the field; internal, becomes InvalidRecordError."""


_MISSING: Final = object()


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _get(raw: Mapping[str, Any], key: str) -> Any:
    value = raw.get(key, _MISSING)
    if value is _MISSING:
        raise _FieldError(f"{key}: missing")
    return value


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = _get(raw, key)
    if not isinstance(value, str):
        raise _FieldError(f"{key}: expected string, got {_type_name(value)}")
    if not value:
        raise _FieldError(f"{key}: empty string")
    return value


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _FieldError(f"{key}: expected string or null, got {_type_name(value)}")


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    value = _get(raw, key)
    if not isinstance(value, bool):
        raise _FieldError(f"{key}: expected bool, got {_type_name(value)}")
    return value


def _opt_number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    # bool is an int subclass, and True is no score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(f"{key}: expected number or null, got {_type_name(value)}")
    return float(value)


def _severity(raw: Mapping[str, Any], key: str = "severity") -> Severity:
    value = _get(raw, key)
    if not isinstance(value, str):
        raise _FieldError(f"{key}: expected string, got {_type_name(value)}")
    try:
        return Severity.parse(value)
    except ValueError:
        raise _FieldError(f"{key}: unknown value {value!r}") from None


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 date-time (``Z`` or an offset, any fraction) into an aware UTC datetime.

    Raises ValueError for anything else, including a date-time without an offset.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # RFC 3339 allows lower-case "t" and "z", which fromisoformat refuses.
        parsed = datetime.fromisoformat(text.upper())
    if parsed.tzinfo is None:
        raise ValueError(f"no UTC offset in {text!r}")
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def _date(raw: Mapping[str, Any], key: str) -> datetime:
    value = _get(raw, key)
    if value is None:
        raise _FieldError(f"{key}: null")
    return _date_value(key, value)


def _opt_date(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    return None if value is None else _date_value(key, value)


def _date_value(key: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise _FieldError(f"{key}: expected RFC 3339 date-time string, got {_type_name(value)}")
    try:
        return parse_datetime(value)
    except ValueError:
        raise _FieldError(f"{key}: not an RFC 3339 date-time: {value[:40]!r}") from None


def _record_id(raw: object) -> str | None:
    if isinstance(raw, Mapping):
        value = raw.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def _check_mapping(raw: object, entity: Entity) -> None:
    if not isinstance(raw, Mapping):
        reason = f"record: expected object, got {_type_name(raw)}"
        raise InvalidRecordError(None, reason, entity=entity)


# ----- parsers -----


def parse_vulnerability(raw: Mapping[str, Any]) -> Vulnerability:
    """Validate a raw ``/vulnerabilities`` record; unknown fields are ignored.

    Raises ``InvalidRecordError`` naming the first bad field.
    """
    _check_mapping(raw, "vulnerabilities")
    try:
        deactivated, indefinitely, until = _deactivation(raw)
        return Vulnerability(
            id=_str(raw, "id"),
            name=_str(raw, "name"),
            severity=_severity(raw),
            integration_id=_str(raw, "integrationId"),
            target_id=_str(raw, "targetId"),
            is_fixable=_bool(raw, "isFixable"),
            first_detected_date=_date(raw, "firstDetectedDate"),
            remediate_by_date=_opt_date(raw, "remediateByDate"),
            description=_opt_str(raw, "description"),
            package_identifier=_opt_str(raw, "packageIdentifier"),
            vulnerability_type=_opt_str(raw, "vulnerabilityType"),
            external_url=_opt_str(raw, "externalURL"),
            source_detected_date=_opt_date(raw, "sourceDetectedDate"),
            last_detected_date=_opt_date(raw, "lastDetectedDate"),
            cvss_severity_score=_opt_number(raw, "cvssSeverityScore"),
            scanner_score=_opt_number(raw, "scannerScore"),
            fixed_version=_opt_str(raw, "fixedVersion"),
            scan_source=_opt_str(raw, "scanSource"),
            deactivated=deactivated,
            deactivated_indefinitely=indefinitely,
            deactivated_until=until,
        )
    except _FieldError as exc:
        raise InvalidRecordError(_record_id(raw), str(exc), entity="vulnerabilities") from None


def _deactivation(raw: Mapping[str, Any]) -> tuple[bool, bool, datetime | None]:
    meta = raw.get("deactivateMetadata")
    if meta is None:
        return False, False, None
    if not isinstance(meta, Mapping):
        raise _FieldError(f"deactivateMetadata: expected object or null, got {_type_name(meta)}")
    indefinitely = meta.get("isVulnDeactivatedIndefinitely")
    if indefinitely is not None and not isinstance(indefinitely, bool):
        raise _FieldError(
            "deactivateMetadata.isVulnDeactivatedIndefinitely: expected bool, "
            f"got {_type_name(indefinitely)}"
        )
    until = meta.get("deactivatedUntilDate")
    until_date = (
        None if until is None else _date_value("deactivateMetadata.deactivatedUntilDate", until)
    )
    return True, bool(indefinitely), until_date


def parse_remediation(raw: Mapping[str, Any]) -> Remediation:
    """Validate a raw ``/vulnerability-remediations`` record (severity in any case).

    Raises ``InvalidRecordError`` naming the first bad field.
    """
    _check_mapping(raw, "remediations")
    try:
        return Remediation(
            id=_str(raw, "id"),
            vulnerability_id=_str(raw, "vulnerabilityId"),
            vulnerable_asset_id=_str(raw, "vulnerableAssetId"),
            severity=_severity(raw),
            detected_date=_date(raw, "detectedDate"),
            sla_deadline_date=_opt_date(raw, "slaDeadlineDate"),
            remediation_date=_opt_date(raw, "remediationDate"),
        )
    except _FieldError as exc:
        raise InvalidRecordError(_record_id(raw), str(exc), entity="remediations") from None


def parse_asset(raw: Mapping[str, Any]) -> Asset:
    """Validate a raw ``/vulnerable-assets`` record; scanners give the integration ids.

    Raises ``InvalidRecordError`` naming the first bad field.
    """
    _check_mapping(raw, "assets")
    try:
        type_value = _str(raw, "assetType")
        try:
            asset_type = AssetType(type_value.strip().upper())
        except ValueError:
            raise _FieldError(f"assetType: unknown value {type_value!r}") from None
        return Asset(
            id=_str(raw, "id"),
            name=_str(raw, "name"),
            asset_type=asset_type,
            has_been_scanned=_bool(raw, "hasBeenScanned"),
            image_scan_tag=_opt_str(raw, "imageScanTag"),
            integration_ids=_integration_ids(raw),
        )
    except _FieldError as exc:
        raise InvalidRecordError(_record_id(raw), str(exc), entity="assets") from None


def _integration_ids(raw: Mapping[str, Any]) -> tuple[str, ...]:
    scanners = raw.get("scanners")
    if scanners is None:
        return ()
    if not isinstance(scanners, list):
        raise _FieldError(f"scanners: expected array, got {_type_name(scanners)}")
    ids: list[str] = []
    for n, scanner in enumerate(scanners):
        if not isinstance(scanner, Mapping):
            raise _FieldError(f"scanners[{n}]: expected object, got {_type_name(scanner)}")
        integration = scanner.get("integrationId")
        if integration is None:
            continue
        if not isinstance(integration, str):
            raise _FieldError(
                f"scanners[{n}].integrationId: expected string, got {_type_name(integration)}"
            )
        if integration not in ids:
            ids.append(integration)
    return tuple(ids)


PARSERS: Final[Mapping[Entity, Callable[[Mapping[str, Any]], object]]] = {
    "vulnerabilities": parse_vulnerability,
    "remediations": parse_remediation,
    "assets": parse_asset,
}


def content_hash(raw: Mapping[str, Any]) -> str:
    """A stable hash of a raw record (canonical JSON: sorted keys, no whitespace), for change
    detection: equal for equal content whatever the key order."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
