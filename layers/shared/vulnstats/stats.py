"""The statistics snapshot: one streaming pass over findings and remediations, counters only.

Pure logic (no I/O): the records are consumed once, in constant memory (a fixed set of counters
plus one counter per distinct ``integrationId``), and the result is plain JSON data.

Snapshot shape (``SCHEMA_VERSION`` 1; every key is always present; severity keys are
``LOW``, ``MEDIUM``, ``HIGH``, ``CRITICAL`` in that order; dates are ``...T...sssZ`` strings)::

    schema_version          1
    computed_at             ``now`` in UTC, milliseconds, ``Z``
    run_id                  the run's id, or null
    totals
      open                  findings not deactivated at ``now``
      deactivated           findings deactivated at ``now`` (excluded from everything else)
      overdue               open findings with remediateByDate < now
      no_sla                open findings without remediateByDate (neither overdue nor due)
    open_by_severity        {severity: count}
    open_by_integration     {integrationId: count}, sorted by id, only ids seen
    open_by_asset_type      {asset type: count}, every AssetType plus ``UNKNOWN`` (no asset type)
    overdue_by_severity     {severity: count}
    due                     open, not overdue (remediateByDate >= now), cumulative windows:
      within_7_days         remediateByDate <= now + 7 d
      within_14_days        remediateByDate <= now + 14 d
      within_30_days        remediateByDate <= now + 30 d
    ageing                  open findings by age = floor((now - firstDetectedDate) / 1 day):
      0-30, 31-90, 91-180, 181-365, >365   (a firstDetectedDate after ``now`` counts as 0-30)
    fixable                 {"fixable": count, "not_fixable": count} of open findings
    remediations            remediations with now - 90 d <= remediationDate <= now:
      window_start, window_end
      by_severity           {severity: figures}
      all                   figures over every severity
        figures = count                        remediations in the window
                  mean_days_to_remediate       mean (remediationDate - detectedDate) in days,
                                               2 decimals; null when count is 0
                  with_sla                     those with a slaDeadlineDate
                  on_time                      those with remediationDate <= slaDeadlineDate
                  on_time_rate                 on_time / with_sla, 4 decimals; null when
                                               with_sla is 0

Remediations without a remediationDate are ignored. Every comparison is between aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from vulnstats.models import AssetType, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable

    from vulnstats.models import Remediation, Vulnerability

__all__ = [
    "AGEING_BUCKETS",
    "DUE_WINDOWS_DAYS",
    "REMEDIATION_WINDOW",
    "SCHEMA_VERSION",
    "UNKNOWN_ASSET_TYPE",
    "SnapshotAggregator",
    "compute_snapshot",
]

SCHEMA_VERSION: Final = 1
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
            "mean_days_to_remediate": mean,
            "with_sla": self.with_sla,
            "on_time": self.on_time,
            "on_time_rate": rate,
        }


class SnapshotAggregator:
    """Accumulates findings and remediations one at a time; :meth:`result` gives the snapshot.

    ``now`` must be timezone-aware; it fixes what is open, overdue, due and the windows.
    """

    __slots__ = (
        "_age_limits",
        "_ageing",
        "_by_asset_type",
        "_by_integration",
        "_deactivated",
        "_due",
        "_due_limits",
        "_fixable",
        "_no_sla",
        "_now",
        "_open",
        "_open_by_severity",
        "_overdue_by_severity",
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
        self._open = 0
        self._deactivated = 0
        self._no_sla = 0
        self._fixable = 0
        self._open_by_severity = dict.fromkeys(_SEVERITIES, 0)
        self._overdue_by_severity = dict.fromkeys(_SEVERITIES, 0)
        self._by_integration: dict[str, int] = {}
        self._by_asset_type: dict[AssetType | None, int] = dict.fromkeys((*AssetType, None), 0)
        # Findings falling first in each window; made cumulative in result().
        self._due = [0] * len(DUE_WINDOWS_DAYS)
        self._ageing = [0] * len(AGEING_BUCKETS)
        self._remediations = {severity: _RemediationFigures() for severity in _SEVERITIES}

    def add_vulnerability(self, vuln: Vulnerability) -> None:
        """Count one finding (deactivated ones only in ``totals.deactivated``)."""
        now = self._now
        if vuln.deactivated and vuln.is_deactivated_at(now):
            self._deactivated += 1
            return
        severity = vuln.severity
        self._open += 1
        self._open_by_severity[severity] += 1
        by_integration = self._by_integration
        by_integration[vuln.integration_id] = by_integration.get(vuln.integration_id, 0) + 1
        self._by_asset_type[vuln.asset_type] += 1
        if vuln.is_fixable:
            self._fixable += 1

        deadline = vuln.remediate_by_date
        if deadline is None:
            self._no_sla += 1
        elif deadline < now:
            self._overdue_by_severity[severity] += 1
        else:
            for index, due_limit in enumerate(self._due_limits):
                if deadline <= due_limit:
                    self._due[index] += 1
                    break

        # timedelta.days is the floor of the age in days.
        age = (now - vuln.first_detected_date).days
        bucket = 0
        for age_limit in self._age_limits:
            if age <= age_limit:
                break
            bucket += 1
        self._ageing[bucket] += 1

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

    def result(self) -> dict[str, Any]:
        """The snapshot of everything added so far (see the module docstring for its shape)."""
        due: dict[str, int] = {}
        running = 0
        for days, count in zip(DUE_WINDOWS_DAYS, self._due, strict=True):
            running += count
            due[f"within_{days}_days"] = running
        everything = _RemediationFigures()
        for figures in self._remediations.values():
            everything.merge(figures)
        return {
            "schema_version": SCHEMA_VERSION,
            "computed_at": _format_utc(self._now),
            "run_id": self._run_id,
            "totals": {
                "open": self._open,
                "deactivated": self._deactivated,
                "overdue": sum(self._overdue_by_severity.values()),
                "no_sla": self._no_sla,
            },
            "open_by_severity": {str(s): n for s, n in self._open_by_severity.items()},
            "open_by_integration": dict(sorted(self._by_integration.items())),
            "open_by_asset_type": {
                UNKNOWN_ASSET_TYPE if kind is None else str(kind): count
                for kind, count in self._by_asset_type.items()
            },
            "overdue_by_severity": {str(s): n for s, n in self._overdue_by_severity.items()},
            "due": due,
            "ageing": {
                label: count for (label, _), count in zip(AGEING_BUCKETS, self._ageing, strict=True)
            },
            "fixable": {"fixable": self._fixable, "not_fixable": self._open - self._fixable},
            "remediations": {
                "window_start": _format_utc(self._window_start),
                "window_end": _format_utc(self._now),
                "by_severity": {str(s): f.as_dict() for s, f in self._remediations.items()},
                "all": everything.as_dict(),
            },
        }


def compute_snapshot(
    vulnerabilities: Iterable[Vulnerability],
    remediations: Iterable[Remediation],
    *,
    now: datetime,
    run_id: str | None = None,
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
    return aggregator.result()
