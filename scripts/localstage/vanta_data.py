"""Deterministic Vanta-shaped test data, each record computed on demand from (seed, index).

The listing contract the records are served through (dates, cursors, query filters, pages) is
localstage.vanta_query; its names are exported here too, as the data's own vocabulary.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from localstage.vanta_query import (
    AssetQuery,
    DataError,
    InvalidCursorError,
    JsonObject,
    Page,
    RemediationQuery,
    VulnerabilityQuery,
    decode_cursor,
    encode_cursor,
    format_date,
    parse_date,
    take_page,
    to_ms,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "ASSET_TYPES",
    "DEFAULT_NOW",
    "INTEGRATIONS",
    "SEVERITIES",
    "SLA_DAYS",
    "AssetQuery",
    "DataError",
    "Dataset",
    "InvalidCursorError",
    "JsonObject",
    "Page",
    "RemediationQuery",
    "Revision",
    "VulnerabilityQuery",
    "format_date",
    "parse_date",
]


DEFAULT_NOW: Final = datetime(2025, 1, 1, tzinfo=UTC)
SEVERITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
SLA_DAYS: Final[Mapping[str, int]] = {"CRITICAL": 15, "HIGH": 30, "MEDIUM": 90, "LOW": 180}
INTEGRATIONS: Final = ("qualys", "snyk", "aws_inspector", "crowdstrike", "github_dependabot")
ASSET_TYPES: Final = (
    "SERVER",
    "SERVERLESS_FUNCTION",
    "CONTAINER",
    "CONTAINER_REPOSITORY",
    "CONTAINER_REPOSITORY_IMAGE",
    "CODE_REPOSITORY",
    "MANIFEST_FILE",
    "WORKSTATION",
)
VULNERABILITY_TYPES: Final = ("COMMON", "CONFIGURATION", "GROUPED")

_SECOND_MS: Final = 1_000
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
_MASK16: Final = 0xFFFF
# remediateByDate of the base findings spans [now - 700 d, now + 60 d]; remediations span the
# 400 days before now. Records added by a revision come after the base span, one second apart.
_VULN_SPAN_BEFORE_MS: Final = 700 * _DAY_MS
_VULN_SPAN_MS: Final = 760 * _DAY_MS
_REMEDIATION_SPAN_MS: Final = 400 * _DAY_MS
_ADDED_STEP_MS: Final = _SECOND_MS
_ADDED_REMEDIATION_STEP_MS: Final = 100
# Remediations name closed findings, which the open listing does not return.
_CLOSED_VULN_BASE: Final = 1 << 40
_SEVERITY_CUTS: Final = ((8, "CRITICAL"), (30, "HIGH"), (70, "MEDIUM"), (100, "LOW"))
_CVSS_RANGES: Final[Mapping[str, tuple[int, int]]] = {
    "CRITICAL": (90, 100),
    "HIGH": (70, 89),
    "MEDIUM": (40, 69),
    "LOW": (1, 39),
}
_PACKAGES: Final = (
    ("pypi", "requests", "2.31.0", "2.32.0"),
    ("npm", "lodash", "4.17.20", "4.17.21"),
    ("maven", "org.apache.logging.log4j/log4j-core", "2.14.1", "2.17.1"),
    ("golang", "golang.org/x/net", "0.7.0", "0.17.0"),
    ("deb", "openssl", "3.0.2", "3.0.13"),
    ("rpm", "glibc", "2.34", "2.34.1"),
    ("npm", "express", "4.17.1", "4.19.2"),
    ("pypi", "urllib3", "1.26.5", "1.26.18"),
)
_CONFIG_FINDINGS: Final = (
    "S3 bucket allows public read",
    "Security group allows 0.0.0.0/0 on port 22",
    "IAM user without MFA",
    "RDS instance storage not encrypted",
    "CloudTrail logging disabled",
    "EBS volume not encrypted",
)
_SCAN_SOURCES: Final = ("AGENT", "NETWORK", "IMAGE")
_DEACTIVATION_REASONS: Final = ("False positive", "Accepted risk", "Compensating control")
_ACCOUNTS: Final = ("123456789012", "210987654321", "555555555555", None)


def _field(bits: int, n: int) -> int:
    """The n-th 16-bit slice of a 512-bit digest."""
    return (bits >> (n << 4)) & _MASK16


def _lower_bound(key: Callable[[int], int], lo: int, hi: int, target: int) -> int:
    """First index in [lo, hi) whose non-decreasing key is >= target (hi when none)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if key(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@dataclass(frozen=True, slots=True)
class Revision:
    """How a data set differs from its base (revision 1): all counts are relative to the base.

    Changed findings get a new description, lastDetectedDate, scannerScore and fix fields; removed
    findings vanish from listings and lookups; added findings and remediations sort after the base
    ones. ``number`` salts the choice of changed findings and their new content.
    """

    number: int = 1
    change_fraction: float = 0.0
    changed_ids: frozenset[str] = frozenset()
    removed_count: int = 0
    removed_ids: frozenset[str] = frozenset()
    added_count: int = 0
    added_remediations: int = 0

    def to_dict(self) -> JsonObject:
        """JSON form, as accepted by :meth:`from_dict`."""
        return {
            "number": self.number,
            "change_fraction": self.change_fraction,
            "changed_ids": sorted(self.changed_ids),
            "removed_count": self.removed_count,
            "removed_ids": sorted(self.removed_ids),
            "added_count": self.added_count,
            "added_remediations": self.added_remediations,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Revision:
        """Build from JSON; unknown keys are an error so typos do not pass silently."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise DataError(f"unknown revision fields: {sorted(unknown)}")
        try:
            return cls(
                number=int(data.get("number", 1)),
                change_fraction=float(data.get("change_fraction", 0.0)),
                changed_ids=frozenset(str(x) for x in data.get("changed_ids", ())),
                removed_count=int(data.get("removed_count", 0)),
                removed_ids=frozenset(str(x) for x in data.get("removed_ids", ())),
                added_count=int(data.get("added_count", 0)),
                added_remediations=int(data.get("added_remediations", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"invalid revision: {exc}") from exc


@dataclass(frozen=True)
class Dataset:
    """A generated Vanta tenant. Record i is a pure function of (seed, i, now, revision).

    Nothing is materialised: listings stream, lookups parse the index out of the id, so a data
    set of a million findings costs a few hundred bytes. Findings are listed by remediateByDate
    ascending (ties by index), findings without an SLA after all dated ones, in index order.
    """

    seed: int = 0
    vulnerability_count: int = 1000
    asset_count: int = 100
    remediation_count: int = 500
    now: datetime = DEFAULT_NOW
    revision: Revision = field(default_factory=Revision)

    def __post_init__(self) -> None:
        if min(self.vulnerability_count, self.asset_count, self.remediation_count) < 0:
            raise DataError("counts must not be negative")
        rev = self.revision
        if min(rev.removed_count, rev.added_count, rev.added_remediations) < 0:
            raise DataError("revision counts must not be negative")
        if self.asset_count == 0 and (
            self.vulnerability_count + rev.added_count + self.remediation_count > 0
        ):
            raise DataError("findings and remediations need at least one asset")
        if self.now.tzinfo is None:
            raise DataError("now must be timezone-aware")
        if not 1 <= rev.number < 1 << 15:
            raise DataError("revision number must be within 1..32767")
        if not 0.0 <= rev.change_fraction <= 1.0:
            raise DataError("change_fraction must be within 0..1")
        if rev.removed_count > self.vulnerability_count:
            raise DataError("removed_count exceeds vulnerability_count")

    # ----- JSON form (admin endpoint, CLI) -----

    def to_dict(self) -> JsonObject:
        """JSON form, as accepted by :meth:`from_dict`."""
        return {
            "seed": self.seed,
            "vulnerabilities": self.vulnerability_count,
            "assets": self.asset_count,
            "remediations": self.remediation_count,
            "now": format_date(self._now_ms),
            "revision": self.revision.to_dict(),
        }

    def updated(self, data: Mapping[str, Any]) -> Dataset:
        """A copy with the JSON keys given in ``data`` replaced (others kept)."""
        allowed = {"seed", "vulnerabilities", "assets", "remediations", "now", "revision"}
        unknown = set(data) - allowed
        if unknown:
            raise DataError(f"unknown dataset fields: {sorted(unknown)}")
        try:
            now = self.now
            if "now" in data:
                now = datetime.fromtimestamp(parse_date(str(data["now"])) / 1000, UTC)
            revision = self.revision
            if "revision" in data:
                revision = Revision.from_dict(data["revision"] or {})
            return Dataset(
                seed=int(data.get("seed", self.seed)),
                vulnerability_count=int(data.get("vulnerabilities", self.vulnerability_count)),
                asset_count=int(data.get("assets", self.asset_count)),
                remediation_count=int(data.get("remediations", self.remediation_count)),
                now=now,
                revision=revision,
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"invalid dataset: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dataset:
        """Build from JSON; missing keys take the defaults."""
        return cls().updated(data)

    def with_revision(self, revision: Revision) -> Dataset:
        """The same tenant at another revision."""
        return replace(self, revision=revision)

    # ----- derived constants (cached per instance) -----

    @cached_property
    def _key(self) -> bytes:
        return hashlib.blake2b(f"vanta-standin:{self.seed}".encode(), digest_size=32).digest()

    @cached_property
    def _now_ms(self) -> int:
        return to_ms(self.now)

    @cached_property
    def _vuln_total(self) -> int:
        return self.vulnerability_count + self.revision.added_count

    @cached_property
    def _remediation_total(self) -> int:
        return self.remediation_count + self.revision.added_remediations

    def _prefix(self, kind: str) -> str:
        return hashlib.blake2b(self._key + kind.encode(), digest_size=4).hexdigest()

    @cached_property
    def _vuln_prefix(self) -> str:
        return self._prefix("vulnerability")

    @cached_property
    def _asset_prefix(self) -> str:
        return self._prefix("asset")

    @cached_property
    def _remediation_prefix(self) -> str:
        return self._prefix("remediation")

    @cached_property
    def _removed(self) -> frozenset[int]:
        rev = self.revision
        # Not for security: a reproducible choice of which findings a revision removes.
        rng = random.Random(f"removed:{self.seed}:{rev.number}")  # noqa: S311
        picked = set(rng.sample(range(self.vulnerability_count), rev.removed_count))
        for vid in rev.removed_ids:
            index = self._parse_id(vid, self._vuln_prefix)
            if index is not None and index < self._vuln_total:
                picked.add(index)
        return frozenset(picked)

    @cached_property
    def _changed_explicit(self) -> frozenset[int]:
        parsed = (self._parse_id(vid, self._vuln_prefix) for vid in self.revision.changed_ids)
        return frozenset(i for i in parsed if i is not None)

    @cached_property
    def _change_threshold(self) -> int:
        return round(self.revision.change_fraction * (1 << 32))

    @cached_property
    def _hashers(self) -> dict[bytes, hashlib.blake2b]:
        # Copying a keyed hasher is about twice as fast as keying a new one for every record.
        return {
            person: hashlib.blake2b(digest_size=64, key=self._key, person=person)
            for person in (b"vuln", b"vchg", b"asset", b"remd")
        }

    def _digest(self, person: bytes, index: int) -> int:
        """512 pseudo-random bits for one record: a keyed BLAKE2b of its index."""
        hasher = self._hashers[person].copy()
        hasher.update(index.to_bytes(8, "little"))
        return int.from_bytes(hasher.digest(), "little")

    # ----- ids -----

    @staticmethod
    def _parse_id(value: str, prefix: str) -> int | None:
        if len(value) != 24 or not value.startswith(prefix):
            return None
        try:
            return int(value[8:], 16)
        except ValueError:
            return None

    def vulnerability_id(self, index: int) -> str:
        """Id of the finding with this index."""
        return f"{self._vuln_prefix}{index:016x}"

    def asset_id(self, index: int) -> str:
        """Id of the asset with this index."""
        return f"{self._asset_prefix}{index:016x}"

    def remediation_id(self, index: int) -> str:
        """Id of the remediation with this index."""
        return f"{self._remediation_prefix}{index:016x}"

    # ----- vulnerabilities -----

    def _rbd_ms(self, index: int) -> int:
        """Non-decreasing in index: the virtual remediateByDate that fixes the listing order."""
        base = self.vulnerability_count
        start = self._now_ms - _VULN_SPAN_BEFORE_MS
        if index < base:
            return start + index * _VULN_SPAN_MS // base
        return start + _VULN_SPAN_MS + (index - base + 1) * _ADDED_STEP_MS

    @staticmethod
    def _has_sla(bits: int) -> bool:
        return _field(bits, 0) % 1000 >= 80  # 8 % of findings have no SLA

    def _is_changed(self, index: int) -> bool:
        if index >= self.vulnerability_count:
            return False
        if index in self._changed_explicit:
            return True
        if self._change_threshold == 0:
            return False
        salted = self._digest(b"vchg", index ^ (self.revision.number << 48))
        return (salted & 0xFFFFFFFF) < self._change_threshold

    def _severity(self, index: int, bits: int) -> str:
        sev_roll = _field(bits, 1) % 100
        rank = next(n for n, (cut, _) in enumerate(_SEVERITY_CUTS) if sev_roll < cut)
        if self._has_sla(bits):
            # Vanta fixes remediateByDate = detection + SLA, and detection lies in the past:
            # a deadline far ahead needs a long SLA, so a lower severity.
            ahead = self._rbd_ms(index) - self._now_ms + _HOUR_MS
            while SLA_DAYS[SEVERITIES[rank]] * _DAY_MS <= ahead and rank < len(SEVERITIES) - 1:
                rank += 1
        return SEVERITIES[rank]

    def _vulnerability(self, index: int, bits: int) -> JsonObject:
        now = self._now_ms
        severity = self._severity(index, bits)
        if self._has_sla(bits):
            sla_ms = self._rbd_ms(index)
            rbd: int | None = sla_ms
            first = sla_ms - SLA_DAYS[severity] * _DAY_MS
        else:
            rbd = None
            first = now - _DAY_MS - (_field(bits, 21) * 400 * _DAY_MS >> 16)
        type_roll = _field(bits, 2) % 10
        vtype = "COMMON" if type_roll < 7 else ("CONFIGURATION" if type_roll < 9 else "GROUPED")
        asset_index = ((_field(bits, 4) << 16) | _field(bits, 3)) % self.asset_count
        ecosystem, package, version, fixed = _PACKAGES[_field(bits, 6) % len(_PACKAGES)]
        cve = f"CVE-{2015 + _field(bits, 22) % 10}-{10000 + _field(bits, 5) % 40000}"
        if vtype == "CONFIGURATION":
            name = _CONFIG_FINDINGS[_field(bits, 5) % len(_CONFIG_FINDINGS)]
            package_id: str | None = None
            url = f"https://scanner.example/findings/{self.vulnerability_id(index)}"
            description = f"{name} on the target resource."
        else:
            name = cve if vtype == "COMMON" else f"{package} vulnerabilities"
            package_id = f"pkg:{ecosystem}/{package}@{version}"
            url = f"https://nvd.nist.gov/vuln/detail/{cve}"
            description = f"{cve} in {package} {version}; fixed in {fixed}."
        fixable = package_id is not None and _field(bits, 8) % 100 < 60
        cvss_lo, cvss_hi = _CVSS_RANGES[severity]
        cvss = (
            None
            if _field(bits, 9) % 100 < 15
            else (cvss_lo + _field(bits, 10) % (cvss_hi - cvss_lo + 1)) / 10
        )
        scanner_score = None if _field(bits, 11) % 100 < 30 else (_field(bits, 12) % 1001) / 100
        source = None if _field(bits, 13) % 100 < 20 else first - _field(bits, 14) % 72 * _HOUR_MS
        last = None
        if _field(bits, 15) % 100 >= 10:
            last = first + (max(now - first, 0) * _field(bits, 16) >> 16)
        related = _field(bits, 20) % 3
        deactivate: JsonObject | None = None
        if _field(bits, 18) % 1000 < 50:
            on = now - (_field(bits, 19) % 60 + 1) * _DAY_MS
            indefinitely = _field(bits, 19) % 2 == 0
            deactivate = {
                "isVulnDeactivatedIndefinitely": indefinitely,
                "deactivatedUntilDate": None if indefinitely else format_date(now + 90 * _DAY_MS),
                "deactivationReason": _DEACTIVATION_REASONS[
                    _field(bits, 19) % len(_DEACTIVATION_REASONS)
                ],
                "deactivatedOnDate": format_date(on),
                "deactivatedBy": f"user-{_field(bits, 19) % 50:02d}@example.com",
            }
        if self._is_changed(index):
            salted = self._digest(b"vchg", index ^ (self.revision.number << 48))
            description = f"{description} Re-scanned in revision {self.revision.number}."
            last = now - (_field(salted, 2) % 48) * _HOUR_MS
            scanner_score = (_field(salted, 3) % 1001) / 100
            fixable = package_id is not None and _field(salted, 4) % 2 == 0
        rec: JsonObject = {
            "id": self.vulnerability_id(index),
            "name": name,
            "description": description,
            "integrationId": self._asset_integration(asset_index),
            "targetId": self.asset_id(asset_index),
            "externalURL": url,
            "packageIdentifier": package_id,
            "vulnerabilityType": vtype,
            "firstDetectedDate": format_date(first),
            "sourceDetectedDate": None if source is None else format_date(source),
            "lastDetectedDate": None if last is None else format_date(last),
            "remediateByDate": None if rbd is None else format_date(rbd),
            "severity": severity,
            "cvssSeverityScore": cvss,
            "scannerScore": scanner_score,
            "isFixable": fixable,
            "relatedVulns": [
                f"CVE-2024-{20000 + (_field(bits, 23) + k) % 9000}" for k in range(related)
            ],
            "relatedUrls": [f"https://advisories.example/{cve}/{k}" for k in range(related)],
            "fixedVersion": fixed if fixable else None,
            "deactivateMetadata": deactivate,
        }
        roll = _field(bits, 17) % 4
        if roll:  # a quarter of the findings come without scanSource at all
            rec["scanSource"] = _SCAN_SOURCES[roll - 1]
        return rec

    def _vuln_bits(self, index: int) -> int:
        return self._digest(b"vuln", index)

    def _vuln_ranges(
        self, query: VulnerabilityQuery, after: tuple[int, int] | None
    ) -> list[tuple[int, int, int]]:
        """(region, start, stop) index ranges still to walk: region 0 dated, 1 without SLA."""
        total = self._vuln_total
        lo, hi = 0, total
        if query.sla_after_ms is not None:
            lo = _lower_bound(self._rbd_ms, 0, total, query.sla_after_ms)
        if query.sla_before_ms is not None:
            hi = _lower_bound(self._rbd_ms, 0, total, query.sla_before_ms)
        ranges = [(0, lo, hi)]
        dated = query.sla_after_ms is not None or query.sla_before_ms is not None
        if query.include_without_sla and not dated:
            ranges.append((1, 0, total))
        if after is None:
            return ranges
        region_after, index_after = after
        return [
            (region, max(start, index_after + 1) if region == region_after else start, stop)
            for region, start, stop in ranges
            if region >= region_after
        ]

    def _vuln_positions(
        self, query: VulnerabilityQuery, after: tuple[int, int] | None
    ) -> Iterator[tuple[int, int, int]]:
        """(region, index, bits) in listing order, after a position, skipping removed findings."""
        removed = self._removed
        asset_index: int | None = None
        if query.vulnerable_asset_id is not None:
            asset_index = self._parse_id(query.vulnerable_asset_id, self._asset_prefix)
            if asset_index is None:
                return
        for region, start, stop in self._vuln_ranges(query, after):
            want_sla = region == 0
            for index in range(start, stop):
                bits = self._vuln_bits(index)
                if self._has_sla(bits) is not want_sla or index in removed:
                    continue
                if asset_index is not None and (
                    ((_field(bits, 4) << 16) | _field(bits, 3)) % self.asset_count != asset_index
                ):
                    continue
                # Cheap pre-check so a severity filter does not build the records it rejects.
                if query.severities is not None and (
                    self._severity(index, bits) not in query.severities
                ):
                    continue
                yield region, index, bits

    def _vuln_stream(
        self, query: VulnerabilityQuery, after: tuple[int, int] | None
    ) -> Iterator[tuple[str, JsonObject]]:
        for region, index, bits in self._vuln_positions(query, after):
            rec = self._vulnerability(index, bits)
            if query.matches(rec):
                yield encode_cursor("v", region, index), rec

    def page_vulnerabilities(
        self, query: VulnerabilityQuery, page_size: int, cursor: str | None = None
    ) -> Page:
        """One page of GET /vulnerabilities after an exclusive cursor."""
        after = None if cursor is None else decode_cursor("v", cursor)
        return take_page(self._vuln_stream(query, after), page_size, cursor)

    def iter_vulnerabilities(self, query: VulnerabilityQuery | None = None) -> Iterator[JsonObject]:
        """Every finding the query selects, in listing order (default: all, with or without SLA)."""
        for _, rec in self._vuln_stream(query or VulnerabilityQuery(), None):
            yield rec

    def iter_vulnerability_ids(self, *, include_without_sla: bool = True) -> Iterator[str]:
        """Ids in listing order without building the records (cheap: one hash per finding)."""
        query = VulnerabilityQuery(include_without_sla=include_without_sla)
        for _, index, _ in self._vuln_positions(query, None):
            yield self.vulnerability_id(index)

    def count_vulnerabilities(self, query: VulnerabilityQuery | None = None) -> int:
        """How many findings the query selects."""
        query = query or VulnerabilityQuery()
        if query.is_trivial():
            return sum(1 for _ in self._vuln_positions(query, None))
        return sum(1 for _ in self._vuln_stream(query, None))

    def get_vulnerability(self, vulnerability_id: str) -> JsonObject | None:
        """The finding with this id, or None when it does not exist (or was removed)."""
        index = self._parse_id(vulnerability_id, self._vuln_prefix)
        if index is None or index >= self._vuln_total or index in self._removed:
            return None
        return self._vulnerability(index, self._vuln_bits(index))

    def changed_vulnerability_ids(self) -> Iterator[str]:
        """Base findings whose content this revision changes (removed ones excluded)."""
        for index in range(self.vulnerability_count):
            if index not in self._removed and self._is_changed(index):
                yield self.vulnerability_id(index)

    def removed_vulnerability_ids(self) -> list[str]:
        """Findings this revision removes, sorted by index."""
        return [self.vulnerability_id(i) for i in sorted(self._removed)]

    def added_vulnerability_ids(self) -> list[str]:
        """Findings this revision adds (removed ones excluded)."""
        return [
            self.vulnerability_id(i)
            for i in range(self.vulnerability_count, self._vuln_total)
            if i not in self._removed
        ]

    # ----- assets -----

    def _asset_integration(self, index: int) -> str:
        return INTEGRATIONS[_field(self._digest(b"asset", index), 1) % len(INTEGRATIONS)]

    def _asset(self, index: int) -> JsonObject:
        bits = self._digest(b"asset", index)
        asset_type = ASSET_TYPES[_field(bits, 0) % len(ASSET_TYPES)]
        integration = INTEGRATIONS[_field(bits, 1) % len(INTEGRATIONS)]
        account = _ACCOUNTS[_field(bits, 3) % len(_ACCOUNTS)]
        is_image = asset_type in {"CONTAINER_REPOSITORY_IMAGE", "CONTAINER"}
        octets = f"10.{_field(bits, 6) % 256}.{_field(bits, 7) % 256}.{_field(bits, 8) % 254 + 1}"
        if asset_type in {"SERVER", "WORKSTATION"}:
            name = f"ip-{octets.replace('.', '-')}.internal"
        elif asset_type in {"CODE_REPOSITORY", "MANIFEST_FILE"}:
            name = f"github.com/acme/service-{index:05d}"
        else:
            name = f"acme/service-{index:05d}"
        scanners = [
            self._scanner(
                bits,
                index,
                integration=integration,
                account=account,
                is_image=is_image,
                octets=octets,
                asset_type=asset_type,
                n=0,
            )
        ]
        if _field(bits, 4) % 5 == 0:
            other = INTEGRATIONS[(_field(bits, 1) + 1) % len(INTEGRATIONS)]
            scanners.append(
                self._scanner(
                    bits,
                    index,
                    integration=other,
                    account=account,
                    is_image=is_image,
                    octets=octets,
                    asset_type=asset_type,
                    n=1,
                )
            )
        return {
            "id": self.asset_id(index),
            "name": name,
            "assetType": asset_type,
            "hasBeenScanned": _field(bits, 2) % 10 != 0,
            "imageScanTag": f"v1.{_field(bits, 9) % 40}.0" if is_image else None,
            "scanners": scanners,
        }

    def _scanner(
        self,
        bits: int,
        index: int,
        *,
        integration: str,
        account: str | None,
        is_image: bool,
        octets: str,
        asset_type: str,
        n: int,
    ) -> JsonObject:
        host = asset_type in {"SERVER", "WORKSTATION"}
        return {
            "resourceId": f"{integration}-resource-{index:06d}-{n}",
            "integrationId": integration,
            "targetId": self.asset_id(index),
            "imageDigest": f"sha256:{bits & ((1 << 256) - 1):064x}" if is_image else None,
            "imagePushedAtDate": (
                format_date(self._now_ms - (_field(bits, 10) % 90) * _DAY_MS) if is_image else None
            ),
            "imageTags": [f"v1.{_field(bits, 9) % 40}.0"] if is_image else [],
            "assetTags": [{"key": "team", "value": f"team-{_field(bits, 11) % 7}"}],
            "parentAccountOrOrganization": account,
            "biosUuid": None,
            "ipv4s": [octets] if host else [],
            "ipv6s": [],
            "macAddresses": [],
            "hostnames": [f"host-{index:05d}"] if host else [],
            "fqdns": [],
            "operatingSystems": ["Ubuntu 22.04"] if host else [],
        }

    def _asset_stream(self, query: AssetQuery, after: int) -> Iterator[tuple[str, JsonObject]]:
        for index in range(after + 1, self.asset_count):
            rec = self._asset(index)
            if query.matches(rec):
                yield encode_cursor("a", 0, index), rec

    def page_assets(self, query: AssetQuery, page_size: int, cursor: str | None = None) -> Page:
        """One page of GET /vulnerable-assets after an exclusive cursor."""
        after = -1 if cursor is None else decode_cursor("a", cursor)[1]
        return take_page(self._asset_stream(query, after), page_size, cursor)

    def iter_assets(self, query: AssetQuery | None = None) -> Iterator[JsonObject]:
        """Every asset the query selects, in listing order (index order)."""
        for _, rec in self._asset_stream(query or AssetQuery(), -1):
            yield rec

    def count_assets(self) -> int:
        """How many assets exist."""
        return self.asset_count

    def get_asset(self, asset_id: str) -> JsonObject | None:
        """The asset with this id, or None."""
        index = self._parse_id(asset_id, self._asset_prefix)
        if index is None or index >= self.asset_count:
            return None
        return self._asset(index)

    # ----- remediations -----

    def _remediation_ms(self, index: int) -> int:
        """Strictly increasing in index: remediationDate, which fixes the listing order."""
        base = self.remediation_count
        start = self._now_ms - _REMEDIATION_SPAN_MS - _HOUR_MS
        if index < base:
            return start + index * _REMEDIATION_SPAN_MS // base
        return start + _REMEDIATION_SPAN_MS + (index - base + 1) * _ADDED_REMEDIATION_STEP_MS

    def _remediation(self, index: int) -> JsonObject:
        bits = self._digest(b"remd", index)
        sev_roll = _field(bits, 0) % 100
        severity = next(name for cut, name in _SEVERITY_CUTS if sev_roll < cut)
        remediated = self._remediation_ms(index)
        detected = remediated - _HOUR_MS - (_field(bits, 4) * 200 * _DAY_MS >> 16)
        sla = None if _field(bits, 5) % 100 < 5 else detected + SLA_DAYS[severity] * _DAY_MS
        asset_index = ((_field(bits, 3) << 16) | _field(bits, 2)) % self.asset_count
        return {
            "id": self.remediation_id(index),
            "vulnerabilityId": self.vulnerability_id(_CLOSED_VULN_BASE + index),
            "vulnerableAssetId": self.asset_id(asset_index),
            # The documented example is lower case: a third of the records follow it.
            "severity": severity.lower() if _field(bits, 1) % 3 == 0 else severity,
            "detectedDate": format_date(detected),
            "slaDeadlineDate": None if sla is None else format_date(sla),
            "remediationDate": format_date(remediated),
        }

    def _remediation_stream(
        self, query: RemediationQuery, after: int
    ) -> Iterator[tuple[str, JsonObject]]:
        total = self._remediation_total
        lo, hi = after + 1, total
        if query.remediated_after_ms is not None:
            lo = max(lo, _lower_bound(self._remediation_ms, 0, total, query.remediated_after_ms))
        if query.remediated_before_ms is not None:
            hi = _lower_bound(self._remediation_ms, 0, total, query.remediated_before_ms)
        for index in range(lo, hi):
            rec = self._remediation(index)
            if query.severities is not None and rec["severity"].upper() not in query.severities:
                continue
            if (
                query.integration_ids is not None
                and self._asset_integration(int(rec["vulnerableAssetId"][8:], 16))
                not in query.integration_ids
            ):
                continue
            if query.is_remediated_on_time is not None:
                sla = rec["slaDeadlineDate"]
                on_time = sla is not None and parse_date(rec["remediationDate"]) <= parse_date(sla)
                if on_time is not query.is_remediated_on_time:
                    continue
            yield encode_cursor("r", 0, index), rec

    def page_remediations(
        self, query: RemediationQuery, page_size: int, cursor: str | None = None
    ) -> Page:
        """One page of GET /vulnerability-remediations after an exclusive cursor."""
        after = -1 if cursor is None else decode_cursor("r", cursor)[1]
        return take_page(self._remediation_stream(query, after), page_size, cursor)

    def iter_remediations(self, query: RemediationQuery | None = None) -> Iterator[JsonObject]:
        """Every remediation the query selects, ordered by remediationDate ascending."""
        for _, rec in self._remediation_stream(query or RemediationQuery(), -1):
            yield rec

    def count_remediations(self) -> int:
        """How many remediations exist (base plus added)."""
        return self._remediation_total
