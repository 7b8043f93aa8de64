"""The statistics snapshot: one streaming pass over findings and remediations, counters only.

Pure logic (no I/O): the records are consumed once, in constant memory (a fixed set of counters
plus one counter per distinct ``integrationId``), and the result is plain JSON data.

Snapshot shape (``SCHEMA_VERSION`` 2; every key is always present; severity keys are
``LOW``, ``MEDIUM``, ``HIGH``, ``CRITICAL`` in that order; dates are ``...T...sssZ`` strings).
Field names are camelCase, as the API serves them; keys that are data (severities, integration
ids, asset types, ageing labels) are kept as they are::

    schemaVersion           2
    computedAt              ``now`` in UTC, milliseconds, ``Z``
    runId                   the run's id, or null
    includesDeactivated     whether deactivated findings count as open (see below)
    totals
      open                  open findings
      deactivated           findings deactivated at ``now``
      overdue               open findings with remediateByDate < now
      noSla                 open findings without remediateByDate (neither overdue nor due)
    openBySeverity          {severity: count}
    openByIntegration       {integrationId: count}, sorted by id, only ids seen
    openByAssetType         {asset type: count}, every AssetType plus ``UNKNOWN`` (no asset type)
    overdueBySeverity       {severity: count}
    due                     open, not overdue (remediateByDate >= now), cumulative windows:
      within7Days           remediateByDate <= now + 7 d
      within14Days          remediateByDate <= now + 14 d
      within30Days          remediateByDate <= now + 30 d
    ageing                  open findings by age = floor((now - firstDetectedDate) / 1 day):
      0-30, 31-90, 91-180, 181-365, >365   (a firstDetectedDate after ``now`` counts as 0-30)
    fixable                 {"fixable": count, "notFixable": count} of open findings
    remediations            remediations with now - 90 d <= remediationDate <= now:
      windowStart, windowEnd
      bySeverity            {severity: figures}
      all                   figures over every severity
        figures = count                        remediations in the window
                  meanDaysToRemediate          mean (remediationDate - detectedDate) in days,
                                               2 decimals; null when count is 0
                  withSla                      those with a slaDeadlineDate
                  onTime                       those with remediationDate <= slaDeadlineDate
                  onTimeRate                   onTime / withSla, 4 decimals; null when
                                               withSla is 0

*Open* means not deactivated at ``now`` in the default snapshot; in the one with
``includesDeactivated`` true every finding in the table is open (``totals.deactivated`` still
says how many of them are deactivated). One pass computes both: the findings deactivated at
``now`` are counted apart and merged into the second at the end.

Remediations without a remediationDate are ignored. Every comparison is between aware datetimes.
Snapshots of schema version 1 (snake_case names, stored by earlier versions) are read through
:func:`upgrade_snapshot`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from vulnstats.models import AssetType, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from vulnstats.models import Remediation, Vulnerability

__all__ = [
    "AGEING_BUCKETS",
    "DUE_WINDOWS_DAYS",
    "REMEDIATION_WINDOW",
    "SCHEMA_VERSION",
    "UNKNOWN_ASSET_TYPE",
    "SnapshotAggregator",
    "compute_snapshot",
    "upgrade_snapshot",
]

SCHEMA_VERSION: Final = 2
UNKNOWN_ASSET_TYPE: Final = "UNKNOWN"
DUE_WINDOWS_DAYS: Final = (7, 14, 30)
REMEDIATION_WINDOW: Final = timedelta(days=90)
# (label, greatest age in whole days that falls in it); the last bucket is unbounded.
AGEING_BUCKETS: Final[tuple[tuple[str, int | None], ...]] = (
    ("0-30", 30),
    ("31-90", 90),
    ("91-180", 180),
    ("181-365", 365),
    (">365", None),
)

_SEVERITIES: Final = tuple(Severity)
_MICROSECONDS_PER_DAY: Final = 86_400 * 1_000_000
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


def _format_utc(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class _RemediationFigures:
    """Counters of one severity's remediations in the window."""

    __slots__ = ("count", "on_time", "total_microseconds", "with_sla")

    def __init__(self) -> None:
        self.count = 0
        self.total_microseconds = 0
        self.with_sla = 0
        self.on_time = 0

    def merge(self, other: _RemediationFigures) -> None:
        self.count += other.count
        self.total_microseconds += other.total_microseconds
        self.with_sla += other.with_sla
        self.on_time += other.on_time

    def as_dict(self) -> dict[str, Any]:
        # Integer microseconds keep the sum exact; one division rounds once.
        mean = (
            round(self.total_microseconds / (self.count * _MICROSECONDS_PER_DAY), 2)
            if self.count
            else None
        )
        rate = round(self.on_time / self.with_sla, 4) if self.with_sla else None
        return {
            "count": self.count,
            "meanDaysToRemediate": mean,
            "withSla": self.with_sla,
            "onTime": self.on_time,
            "onTimeRate": rate,
        }


def _summed[K](mine: dict[K, int], theirs: dict[K, int]) -> dict[K, int]:
    """Counts of both maps, in ``mine``'s key order."""
    return {key: mine.get(key, 0) + theirs.get(key, 0) for key in mine | theirs}


class _FindingFigures:
    """Counters of one population of findings; ``due`` and ``ageing`` per window and bucket."""

    __slots__ = (
        "ageing",
        "by_asset_type",
        "by_integration",
        "by_severity",
        "count",
        "due",
        "fixable",
        "no_sla",
        "overdue_by_severity",
    )

    def __init__(self) -> None:
        self.count = 0
        self.no_sla = 0
        self.fixable = 0
        self.by_severity = dict.fromkeys(_SEVERITIES, 0)
        self.overdue_by_severity = dict.fromkeys(_SEVERITIES, 0)
        self.by_integration: dict[str, int] = {}
        self.by_asset_type: dict[AssetType | None, int] = dict.fromkeys((*AssetType, None), 0)
        # Findings falling first in each window; made cumulative in as_dict().
        self.due = [0] * len(DUE_WINDOWS_DAYS)
        self.ageing = [0] * len(AGEING_BUCKETS)

    def merged(self, other: _FindingFigures) -> _FindingFigures:
        both = _FindingFigures()
        both.count = self.count + other.count
        both.no_sla = self.no_sla + other.no_sla
        both.fixable = self.fixable + other.fixable
        both.by_severity = _summed(self.by_severity, other.by_severity)
        both.overdue_by_severity = _summed(self.overdue_by_severity, other.overdue_by_severity)
        both.by_integration = _summed(self.by_integration, other.by_integration)
        both.by_asset_type = _summed(self.by_asset_type, other.by_asset_type)
        both.due = [a + b for a, b in zip(self.due, other.due, strict=True)]
        both.ageing = [a + b for a, b in zip(self.ageing, other.ageing, strict=True)]
        return both

    def as_dict(self, deactivated: int) -> dict[str, Any]:
        due: dict[str, int] = {}
        running = 0
        for days, count in zip(DUE_WINDOWS_DAYS, self.due, strict=True):
            running += count
            due[f"within{days}Days"] = running
        return {
            "totals": {
                "open": self.count,
                "deactivated": deactivated,
                "overdue": sum(self.overdue_by_severity.values()),
                "noSla": self.no_sla,
            },
            "openBySeverity": {str(s): n for s, n in self.by_severity.items()},
            "openByIntegration": dict(sorted(self.by_integration.items())),
            "openByAssetType": {
                UNKNOWN_ASSET_TYPE if kind is None else str(kind): count
                for kind, count in self.by_asset_type.items()
            },
            "overdueBySeverity": {str(s): n for s, n in self.overdue_by_severity.items()},
            "due": due,
            "ageing": {
                label: count for (label, _), count in zip(AGEING_BUCKETS, self.ageing, strict=True)
            },
            "fixable": {"fixable": self.fixable, "notFixable": self.count - self.fixable},
        }


class SnapshotAggregator:
    """Accumulates findings and remediations one at a time; :meth:`result` gives the snapshot.

    ``now`` must be timezone-aware; it fixes what is open, overdue, due and the windows.
    """

    __slots__ = (
        "_age_limits",
        "_deactivated",
        "_due_limits",
        "_now",
        "_open",
        "_remediations",
        "_run_id",
        "_window_start",
    )

    def __init__(self, *, now: datetime, run_id: str | None = None) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        self._now = now
        self._run_id = run_id
        self._window_start = now - REMEDIATION_WINDOW
        self._due_limits = tuple(now + timedelta(days=days) for days in DUE_WINDOWS_DAYS)
        self._age_limits = tuple(limit for _, limit in AGEING_BUCKETS if limit is not None)
        self._open = _FindingFigures()  # not deactivated at now
        self._deactivated = _FindingFigures()  # deactivated at now
        self._remediations = {severity: _RemediationFigures() for severity in _SEVERITIES}

    def add_vulnerability(self, vuln: Vulnerability) -> None:
        """Count one finding (a deactivated one only in the snapshot that includes them)."""
        now = self._now
        figures = (
            self._deactivated if vuln.deactivated and vuln.is_deactivated_at(now) else self._open
        )
        severity = vuln.severity
        figures.count += 1
        figures.by_severity[severity] += 1
        by_integration = figures.by_integration
        by_integration[vuln.integration_id] = by_integration.get(vuln.integration_id, 0) + 1
        figures.by_asset_type[vuln.asset_type] += 1
        if vuln.is_fixable:
            figures.fixable += 1

        deadline = vuln.remediate_by_date
        if deadline is None:
            figures.no_sla += 1
        elif deadline < now:
            figures.overdue_by_severity[severity] += 1
        else:
            for index, due_limit in enumerate(self._due_limits):
                if deadline <= due_limit:
                    figures.due[index] += 1
                    break

        # timedelta.days is the floor of the age in days.
        age = (now - vuln.first_detected_date).days
        bucket = 0
        for age_limit in self._age_limits:
            if age <= age_limit:
                break
            bucket += 1
        figures.ageing[bucket] += 1

    def add_remediation(self, remediation: Remediation) -> None:
        """Count one remediation if its remediationDate is in the last 90 days (inclusive)."""
        remediated = remediation.remediation_date
        if remediated is None or remediated < self._window_start or remediated > self._now:
            return
        figures = self._remediations[remediation.severity]
        figures.count += 1
        figures.total_microseconds += (remediated - remediation.detected_date) // _ONE_MICROSECOND
        deadline = remediation.sla_deadline_date
        if deadline is not None:
            figures.with_sla += 1
            if remediated <= deadline:
                figures.on_time += 1

    def result(self, *, include_deactivated: bool = False) -> dict[str, Any]:
        """The snapshot of everything added so far (see the module docstring for its shape);
        with ``include_deactivated`` the deactivated findings count as open too."""
        findings = self._open.merged(self._deactivated) if include_deactivated else self._open
        everything = _RemediationFigures()
        for figures in self._remediations.values():
            everything.merge(figures)
        return {
            "schemaVersion": SCHEMA_VERSION,
            "computedAt": _format_utc(self._now),
            "runId": self._run_id,
            "includesDeactivated": include_deactivated,
            **findings.as_dict(self._deactivated.count),
            "remediations": {
                "windowStart": _format_utc(self._window_start),
                "windowEnd": _format_utc(self._now),
                "bySeverity": {str(s): f.as_dict() for s, f in self._remediations.items()},
                "all": everything.as_dict(),
            },
        }


def compute_snapshot(
    vulnerabilities: Iterable[Vulnerability],
    remediations: Iterable[Remediation],
    *,
    now: datetime,
    run_id: str | None = None,
    include_deactivated: bool = False,
) -> dict[str, Any]:
    """The statistics snapshot at ``now`` (aware) of the findings and the remediations.

    Each iterable is consumed exactly once and no record is kept, so generators over a whole
    table run in constant memory. ValueError if ``now`` is naive.
    """
    aggregator = SnapshotAggregator(now=now, run_id=run_id)
    add_vulnerability = aggregator.add_vulnerability
    for vuln in vulnerabilities:
        add_vulnerability(vuln)
    add_remediation = aggregator.add_remediation
    for remediation in remediations:
        add_remediation(remediation)
    return aggregator.result(include_deactivated=include_deactivated)


# Schema version 1 named fields in snake_case; its maps keyed by data keep their keys.
_V1_NAMES: Final = {
    "schema_version": "schemaVersion",
    "computed_at": "computedAt",
    "run_id": "runId",
    "no_sla": "noSla",
    "open_by_severity": "openBySeverity",
    "open_by_integration": "openByIntegration",
    "open_by_asset_type": "openByAssetType",
    "overdue_by_severity": "overdueBySeverity",
    "not_fixable": "notFixable",
    "window_start": "windowStart",
    "window_end": "windowEnd",
    "by_severity": "bySeverity",
    "mean_days_to_remediate": "meanDaysToRemediate",
    "with_sla": "withSla",
    "on_time": "onTime",
    "on_time_rate": "onTimeRate",
    **{f"within_{days}_days": f"within{days}Days" for days in DUE_WINDOWS_DAYS},
}
_V1_DATA_KEYED: Final = frozenset(
    {
        "open_by_severity",
        "open_by_integration",
        "open_by_asset_type",
        "overdue_by_severity",
        "ageing",
        "by_severity",
    }
)


def _renamed(value: Any, *, data_keys: bool = False) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        (key if data_keys else _V1_NAMES.get(key, key)): _renamed(
            inner, data_keys=not data_keys and key in _V1_DATA_KEYED
        )
        for key, inner in value.items()
    }


def upgrade_snapshot(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored snapshot in the current shape: schema version 1 (snake_case, written before
    version 2; it never included deactivated findings) is renamed, anything else is kept."""
    if stored.get("schema_version") != 1:
        return dict(stored)
    upgraded: dict[str, Any] = _renamed(dict(stored))
    upgraded["schemaVersion"] = SCHEMA_VERSION
    upgraded["includesDeactivated"] = False
    return upgraded
