"""The listing contract of the Vanta stand-in's data: RFC 3339 dates, opaque page cursors, the
query filters of each endpoint and a page of results. The data set (localstage.vanta_data)
streams records through them."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "AssetQuery",
    "DataError",
    "InvalidCursorError",
    "JsonObject",
    "Page",
    "RemediationQuery",
    "VulnerabilityQuery",
    "decode_cursor",
    "encode_cursor",
    "format_date",
    "parse_date",
    "take_page",
    "to_ms",
]

JsonObject = dict[str, Any]


class DataError(Exception):
    """Base of the data generator's errors."""


class InvalidCursorError(DataError):
    """A pageCursor that this listing did not issue."""


def format_date(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 with milliseconds, e.g. 2024-04-01T00:00:00.000Z."""
    seconds, millis = divmod(ms, 1000)
    tm = time.gmtime(seconds)
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{millis:03d}Z"
    )


def parse_date(text: str) -> int:
    """Parse an RFC 3339 date-time (or a plain date) into epoch milliseconds; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DataError(f"not an RFC 3339 date-time: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return to_ms(parsed)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def encode_cursor(kind: str, region: int, index: int) -> str:
    raw = f"{kind}:{region}:{index}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        got_kind, region, index = raw.split(":")
        position = (int(region), int(index))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError(f"invalid pageCursor {cursor!r}") from exc
    if got_kind != kind or position[0] not in (0, 1) or position[1] < 0:
        raise InvalidCursorError(f"invalid pageCursor {cursor!r}")
    return position


@dataclass(frozen=True, slots=True)
class VulnerabilityQuery:
    """Filters of GET /vulnerabilities; the Python default lists every finding, SLA or not."""

    include_without_sla: bool = True
    severities: frozenset[str] | None = None
    is_fixable: bool | None = None
    integration_ids: frozenset[str] | None = None
    is_deactivated: bool | None = None
    q: str | None = None
    external_vulnerability_id: str | None = None
    package_identifier: str | None = None
    vulnerable_asset_id: str | None = None
    sla_after_ms: int | None = None  # remediateByDate >= this (inclusive)
    sla_before_ms: int | None = None  # remediateByDate < this (exclusive)

    def is_trivial(self) -> bool:
        """True when only the SLA switch applies, so ids can be walked without building records."""
        return replace(self, include_without_sla=True) == VulnerabilityQuery()

    def matches(self, rec: JsonObject) -> bool:
        """Whether a built record passes the record-level filters."""
        checks = (
            self.severities is None or rec["severity"] in self.severities,
            self.is_fixable is None or rec["isFixable"] is self.is_fixable,
            self.integration_ids is None or rec["integrationId"] in self.integration_ids,
            self.is_deactivated is None
            or (rec["deactivateMetadata"] is not None) is self.is_deactivated,
            self.external_vulnerability_id is None or rec["name"] == self.external_vulnerability_id,
            self.package_identifier is None or rec["packageIdentifier"] == self.package_identifier,
        )
        if not all(checks):
            return False
        if self.q is None:
            return True
        needle = self.q.lower()
        return needle in rec["name"].lower() or needle in rec["description"].lower()


@dataclass(frozen=True, slots=True)
class RemediationQuery:
    """Filters of GET /vulnerability-remediations (severity compared case-insensitively)."""

    severities: frozenset[str] | None = None
    integration_ids: frozenset[str] | None = None
    is_remediated_on_time: bool | None = None
    remediated_after_ms: int | None = None  # remediationDate >= this (inclusive)
    remediated_before_ms: int | None = None  # remediationDate < this (exclusive)


@dataclass(frozen=True, slots=True)
class AssetQuery:
    """Filters of GET /vulnerable-assets."""

    q: str | None = None
    integration_ids: frozenset[str] | None = None
    asset_types: frozenset[str] | None = None
    external_account_id: str | None = None

    def matches(self, rec: JsonObject) -> bool:
        """Whether an asset record passes the filters."""
        scanners: list[JsonObject] = rec["scanners"]
        if self.q is not None and self.q.lower() not in rec["name"].lower():
            return False
        if self.integration_ids is not None and not any(
            s["integrationId"] in self.integration_ids for s in scanners
        ):
            return False
        if self.asset_types is not None and rec["assetType"] not in self.asset_types:
            return False
        return self.external_account_id is None or any(
            s["parentAccountOrOrganization"] == self.external_account_id for s in scanners
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: records, one opaque cursor per record, and whether more follow."""

    items: list[JsonObject]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool

    def body(self, end_cursor: str | None = None) -> JsonObject:
        """The response body of the contract; ``end_cursor`` overrides the last record's cursor."""
        return {
            "results": {
                "pageInfo": {
                    "endCursor": end_cursor or (self.cursors[-1] if self.cursors else None),
                    "hasNextPage": self.has_next_page,
                    "hasPreviousPage": self.has_previous_page,
                    "startCursor": self.cursors[0] if self.cursors else None,
                },
                "data": self.items,
            }
        }


def take_page(stream: Iterator[tuple[str, JsonObject]], size: int, after: str | None) -> Page:
    items: list[JsonObject] = []
    cursors: list[str] = []
    has_next = False
    for cursor, rec in stream:
        if len(items) == size:
            has_next = True
            break
        items.append(rec)
        cursors.append(cursor)
    return Page(items, cursors, has_next, after is not None)
