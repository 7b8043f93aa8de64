"""Statistics snapshot: every bucket edge, deactivation, remediation window, streaming, JSON."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vulnstats.models import AssetType, Remediation, Severity, Vulnerability
from vulnstats.stats import SnapshotAggregator, compute_snapshot, upgrade_snapshot

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
SEVERITY_NAMES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


def vuln(**changes: Any) -> Vulnerability:
    """An open, fixable HIGH finding on a SERVER, detected a day ago, due in 60 days."""
    base = Vulnerability(
        id="vuln-1",
        name="CVE-2024-3094",
        severity=Severity.HIGH,
        integration_id="snyk",
        target_id="asset-1",
        is_fixable=True,
        first_detected_date=NOW - DAY,
        remediate_by_date=NOW + 60 * DAY,
        asset_type=AssetType.SERVER,
    )
    return dataclasses.replace(base, **changes)


def rem(**changes: Any) -> Remediation:
    """A HIGH remediation detected 20 days ago, fixed 10 days ago, 5 days before its deadline."""
    base = Remediation(
        id="rem-1",
        vulnerability_id="vuln-9",
        vulnerable_asset_id="asset-1",
        severity=Severity.HIGH,
        detected_date=NOW - 20 * DAY,
        sla_deadline_date=NOW - 5 * DAY,
        remediation_date=NOW - 10 * DAY,
    )
    return dataclasses.replace(base, **changes)


def snapshot_of(
    vulns: Iterable[Vulnerability] = (), rems: Iterable[Remediation] = ()
) -> dict[str, Any]:
    return compute_snapshot(vulns, rems, now=NOW, run_id="run-1")


def zeros() -> dict[str, int]:
    return dict.fromkeys(SEVERITY_NAMES, 0)


# ----- empty input: the full shape -----


def test_empty_inputs_give_every_key_with_zero_counts_and_null_rates() -> None:
    # given no findings and no remediations
    # when the snapshot is computed
    snapshot = compute_snapshot([], [], now=NOW)

    # then every section is present, counts are zero and averages are null
    empty_figures = {
        "count": 0,
        "meanDaysToRemediate": None,
        "withSla": 0,
        "onTime": 0,
        "onTimeRate": None,
    }
    assert snapshot == {
        "schemaVersion": 2,
        "computedAt": "2026-11-22T06:00:00.000Z",
        "runId": None,
        "includesDeactivated": False,
        "totals": {"open": 0, "deactivated": 0, "overdue": 0, "noSla": 0},
        "openBySeverity": zeros(),
        "openByIntegration": {},
        "openByAssetType": {
            "SERVER": 0,
            "SERVERLESS_FUNCTION": 0,
            "CONTAINER": 0,
            "CONTAINER_REPOSITORY": 0,
            "CONTAINER_REPOSITORY_IMAGE": 0,
            "CODE_REPOSITORY": 0,
            "MANIFEST_FILE": 0,
            "WORKSTATION": 0,
            "UNKNOWN": 0,
        },
        "overdueBySeverity": zeros(),
        "due": {"within7Days": 0, "within14Days": 0, "within30Days": 0},
        "ageing": {"0-30": 0, "31-90": 0, "91-180": 0, "181-365": 0, ">365": 0},
        "fixable": {"fixable": 0, "notFixable": 0},
        "remediations": {
            "windowStart": "2026-08-24T06:00:00.000Z",
            "windowEnd": "2026-11-22T06:00:00.000Z",
            "bySeverity": dict.fromkeys(SEVERITY_NAMES, empty_figures),
            "all": empty_figures,
        },
    }


def test_severity_keys_keep_their_order_whatever_the_input_order() -> None:
    # given findings of the most severe kind first
    vulns = [vuln(severity=Severity.CRITICAL), vuln(severity=Severity.LOW)]

    # when the snapshot is computed
    snapshot = snapshot_of(vulns)

    # then severities are listed LOW to CRITICAL, the missing ones as 0
    assert list(snapshot["openBySeverity"].items()) == [
        ("LOW", 1),
        ("MEDIUM", 0),
        ("HIGH", 0),
        ("CRITICAL", 1),
    ]


# ----- open counts -----


def test_open_findings_are_counted_by_severity_integration_asset_type_and_fixability() -> None:
    # given four open findings from two scanners
    vulns = [
        vuln(severity=Severity.LOW, integration_id="snyk", is_fixable=False),
        vuln(severity=Severity.HIGH, integration_id="inspector", asset_type=AssetType.CONTAINER),
        vuln(severity=Severity.HIGH, integration_id="snyk"),
        vuln(severity=Severity.CRITICAL, integration_id="aws", is_fixable=False),
    ]

    # when the snapshot is computed
    snapshot = snapshot_of(vulns)

    # then each breakdown adds up to the four, integrations sorted by id
    assert snapshot["totals"]["open"] == 4
    assert snapshot["openBySeverity"] == {"LOW": 1, "MEDIUM": 0, "HIGH": 2, "CRITICAL": 1}
    assert list(snapshot["openByIntegration"].items()) == [
        ("aws", 1),
        ("inspector", 1),
        ("snyk", 2),
    ]
    assert snapshot["openByAssetType"]["SERVER"] == 3
    assert snapshot["openByAssetType"]["CONTAINER"] == 1
    assert snapshot["fixable"] == {"fixable": 2, "notFixable": 2}


def test_a_finding_without_asset_type_counts_as_unknown() -> None:
    # given a finding whose asset was not found
    # when the snapshot is computed
    snapshot = snapshot_of([vuln(asset_type=None)])

    # then it is open under UNKNOWN and under no real type
    by_type = snapshot["openByAssetType"]
    assert by_type["UNKNOWN"] == 1
    assert sum(by_type.values()) == 1


# ----- deactivation -----


@pytest.mark.parametrize(
    ("indefinitely", "until", "is_open"),
    [
        pytest.param(True, None, False, id="indefinitely"),
        pytest.param(False, None, False, id="no-end-date"),
        pytest.param(False, NOW + DAY, False, id="until-future"),
        pytest.param(False, NOW + MICROSECOND, False, id="until-just-after-now"),
        pytest.param(False, NOW, True, id="until-exactly-now"),
        pytest.param(False, NOW - DAY, True, id="until-past"),
    ],
)
def test_deactivated_findings_are_excluded_until_their_deactivation_lapses(
    indefinitely: bool, until: datetime | None, is_open: bool
) -> None:
    # given an overdue finding that is (or was) deactivated
    finding = vuln(
        deactivated=True,
        deactivated_indefinitely=indefinitely,
        deactivated_until=until,
        remediate_by_date=NOW - DAY,
    )

    # when the snapshot is computed
    snapshot = snapshot_of([finding])

    # then it counts as open everywhere, or only as deactivated
    expected = 1 if is_open else 0
    assert snapshot["totals"] == {
        "open": expected,
        "deactivated": 1 - expected,
        "overdue": expected,
        "noSla": 0,
    }
    assert snapshot["openBySeverity"]["HIGH"] == expected
    assert snapshot["overdueBySeverity"]["HIGH"] == expected
    assert snapshot["openByIntegration"] == ({"snyk": 1} if is_open else {})
    assert snapshot["openByAssetType"]["SERVER"] == expected
    assert snapshot["ageing"]["0-30"] == expected
    assert snapshot["fixable"]["fixable"] == expected


# ----- overdue and due windows -----


@pytest.mark.parametrize(
    ("deadline", "overdue", "due_7", "due_14", "due_30"),
    [
        pytest.param(NOW - 400 * DAY, 1, 0, 0, 0, id="long-overdue"),
        pytest.param(NOW - MICROSECOND, 1, 0, 0, 0, id="just-before-now"),
        pytest.param(NOW, 0, 1, 1, 1, id="exactly-now"),
        pytest.param(NOW + 7 * DAY, 0, 1, 1, 1, id="exactly-7-days"),
        pytest.param(NOW + 7 * DAY + MICROSECOND, 0, 0, 1, 1, id="just-after-7-days"),
        pytest.param(NOW + 14 * DAY, 0, 0, 1, 1, id="exactly-14-days"),
        pytest.param(NOW + 14 * DAY + MICROSECOND, 0, 0, 0, 1, id="just-after-14-days"),
        pytest.param(NOW + 30 * DAY, 0, 0, 0, 1, id="exactly-30-days"),
        pytest.param(NOW + 30 * DAY + MICROSECOND, 0, 0, 0, 0, id="just-after-30-days"),
    ],
)
def test_deadline_decides_overdue_or_due_in_cumulative_windows(
    deadline: datetime, overdue: int, due_7: int, due_14: int, due_30: int
) -> None:
    # given one open CRITICAL finding with this remediateByDate
    finding = vuln(severity=Severity.CRITICAL, remediate_by_date=deadline)

    # when the snapshot is computed
    snapshot = snapshot_of([finding])

    # then it is overdue, or due in every window that reaches its deadline
    assert snapshot["totals"]["overdue"] == overdue
    assert snapshot["overdueBySeverity"] == {**zeros(), "CRITICAL": overdue}
    assert snapshot["due"] == {
        "within7Days": due_7,
        "within14Days": due_14,
        "within30Days": due_30,
    }


def test_deadline_in_another_timezone_is_compared_as_an_instant() -> None:
    # given a deadline 30 minutes after now written at UTC+02:00 (so its wall clock is later)
    plus_two = timezone(timedelta(hours=2))
    finding = vuln(remediate_by_date=(NOW - timedelta(minutes=30)).astimezone(plus_two))

    # when the snapshot is computed
    snapshot = snapshot_of([finding])

    # then it is overdue: the instant is before now
    assert snapshot["totals"]["overdue"] == 1


def test_findings_without_sla_are_neither_overdue_nor_due_but_counted() -> None:
    # given an open finding without remediateByDate and one due tomorrow
    vulns = [vuln(remediate_by_date=None), vuln(remediate_by_date=NOW + DAY)]

    # when the snapshot is computed
    snapshot = snapshot_of(vulns)

    # then the first is open, reported as no_sla, and in no deadline figure
    assert snapshot["totals"] == {"open": 2, "deactivated": 0, "overdue": 0, "noSla": 1}
    assert snapshot["overdueBySeverity"] == zeros()
    assert snapshot["due"]["within30Days"] == 1


# ----- ageing -----


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        pytest.param(-DAY, "0-30", id="detected-in-the-future"),
        pytest.param(timedelta(0), "0-30", id="0-days"),
        pytest.param(30 * DAY, "0-30", id="30-days"),
        pytest.param(31 * DAY - MICROSECOND, "0-30", id="30-days-and-a-bit"),
        pytest.param(31 * DAY, "31-90", id="31-days"),
        pytest.param(90 * DAY, "31-90", id="90-days"),
        pytest.param(91 * DAY, "91-180", id="91-days"),
        pytest.param(180 * DAY, "91-180", id="180-days"),
        pytest.param(181 * DAY, "181-365", id="181-days"),
        pytest.param(365 * DAY, "181-365", id="365-days"),
        pytest.param(366 * DAY - MICROSECOND, "181-365", id="365-days-and-a-bit"),
        pytest.param(366 * DAY, ">365", id="366-days"),
        pytest.param(3000 * DAY, ">365", id="3000-days"),
    ],
)
def test_ageing_bucket_is_decided_by_whole_days_since_first_detection(
    age: timedelta, bucket: str
) -> None:
    # given an open finding first detected ``age`` before now
    finding = vuln(first_detected_date=NOW - age)

    # when the snapshot is computed
    snapshot = snapshot_of([finding])

    # then it is in exactly that bucket
    expected = {"0-30": 0, "31-90": 0, "91-180": 0, "181-365": 0, ">365": 0, bucket: 1}
    assert snapshot["ageing"] == expected


# ----- remediations -----


@pytest.mark.parametrize(
    ("remediated", "counted"),
    [
        pytest.param(NOW, True, id="exactly-now"),
        pytest.param(NOW - 45 * DAY, True, id="45-days-ago"),
        pytest.param(NOW - 90 * DAY, True, id="exactly-90-days-ago"),
        pytest.param(NOW - 90 * DAY - MICROSECOND, False, id="just-over-90-days-ago"),
        pytest.param(NOW - 91 * DAY, False, id="91-days-ago"),
        pytest.param(NOW + MICROSECOND, False, id="in-the-future"),
        pytest.param(None, False, id="not-remediated"),
    ],
)
def test_only_remediations_of_the_last_90_days_are_counted(
    remediated: datetime | None, counted: bool
) -> None:
    # given one remediation with this remediationDate (detected long before)
    remediation = rem(detected_date=NOW - 200 * DAY, remediation_date=remediated)

    # when the snapshot is computed
    figures = snapshot_of(rems=[remediation])["remediations"]

    # then it is in the figures only inside the window, edges included
    assert figures["bySeverity"]["HIGH"]["count"] == int(counted)
    assert figures["all"]["count"] == int(counted)


def test_mean_time_to_remediate_and_on_time_rate_are_per_severity() -> None:
    # given three HIGH remediations (one late, one at its deadline) and one CRITICAL
    rems = [
        rem(
            detected_date=NOW - 30 * DAY,
            remediation_date=NOW - 20 * DAY,
            sla_deadline_date=NOW - 25 * DAY,
        ),
        rem(
            detected_date=NOW - 30 * DAY,
            remediation_date=NOW - 10 * DAY,
            sla_deadline_date=NOW - 10 * DAY,
        ),
        rem(
            detected_date=NOW - 30 * DAY,
            remediation_date=NOW - 29 * DAY,
            sla_deadline_date=NOW,
        ),
        rem(
            severity=Severity.CRITICAL,
            detected_date=NOW - 2 * DAY,
            remediation_date=NOW,
            sla_deadline_date=NOW - DAY,
        ),
    ]

    # when the snapshot is computed
    figures = snapshot_of(rems=rems)["remediations"]

    # then HIGH took (10 + 20 + 1) / 3 days on average, 2 of 3 on time; CRITICAL 2 days, late
    assert figures["bySeverity"]["HIGH"] == {
        "count": 3,
        "meanDaysToRemediate": 10.33,
        "withSla": 3,
        "onTime": 2,
        "onTimeRate": 0.6667,
    }
    assert figures["bySeverity"]["CRITICAL"] == {
        "count": 1,
        "meanDaysToRemediate": 2.0,
        "withSla": 1,
        "onTime": 0,
        "onTimeRate": 0.0,
    }
    assert figures["bySeverity"]["LOW"]["count"] == 0
    assert figures["bySeverity"]["LOW"]["onTimeRate"] is None
    assert figures["all"] == {
        "count": 4,
        "meanDaysToRemediate": 8.25,
        "withSla": 4,
        "onTime": 2,
        "onTimeRate": 0.5,
    }


def test_remediations_without_deadline_count_for_time_but_not_for_on_time_rate() -> None:
    # given a MEDIUM remediation without slaDeadlineDate and one late with a deadline
    rems = [
        rem(severity=Severity.MEDIUM, sla_deadline_date=None),
        rem(severity=Severity.LOW, sla_deadline_date=None),
        rem(severity=Severity.LOW, sla_deadline_date=NOW - 15 * DAY),
    ]

    # when the snapshot is computed
    by_severity = snapshot_of(rems=rems)["remediations"]["bySeverity"]

    # then MEDIUM has a mean time but no rate; LOW's rate is over the one with a deadline
    assert by_severity["MEDIUM"] == {
        "count": 1,
        "meanDaysToRemediate": 10.0,
        "withSla": 0,
        "onTime": 0,
        "onTimeRate": None,
    }
    assert by_severity["LOW"]["count"] == 2
    assert by_severity["LOW"]["onTimeRate"] == 0.0


# ----- arguments, streaming, JSON -----


def test_naive_now_is_refused() -> None:
    # given a naive "now"
    # when / then computing a snapshot is refused
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_snapshot([], [], now=datetime(2026, 11, 22, 6, 0))


def test_now_in_another_timezone_is_reported_in_utc_with_z() -> None:
    # given "now" expressed at UTC-05:00
    now = NOW.astimezone(timezone(timedelta(hours=-5)))

    # when the snapshot is computed
    snapshot = compute_snapshot([], [], now=now, run_id="run-7")

    # then its dates are the same instants written in UTC
    assert snapshot["computedAt"] == "2026-11-22T06:00:00.000Z"
    assert snapshot["runId"] == "run-7"
    assert snapshot["remediations"]["windowStart"] == "2026-08-24T06:00:00.000Z"


def mixed_records() -> tuple[list[Vulnerability], list[Remediation]]:
    vulns = [
        vuln(),
        vuln(severity=Severity.LOW, remediate_by_date=None, asset_type=None),
        vuln(severity=Severity.CRITICAL, remediate_by_date=NOW - DAY, integration_id="aws"),
        vuln(deactivated=True, deactivated_indefinitely=True),
        vuln(first_detected_date=NOW - 400 * DAY, remediate_by_date=NOW + 3 * DAY),
    ]
    rems = [rem(), rem(severity=Severity.LOW, sla_deadline_date=None), rem(remediation_date=None)]
    return vulns, rems


def test_one_shot_generators_are_consumed_once_with_the_same_result_as_lists() -> None:
    # given the same records as lists and as generators that count how often they are read
    vulns, rems = mixed_records()
    reads = {"vulns": 0, "rems": 0}

    def once[T](name: str, records: list[T]) -> Iterator[T]:
        reads[name] += 1
        yield from records

    vuln_stream, rem_stream = once("vulns", vulns), once("rems", rems)

    # when the snapshot is computed from the generators
    streamed = snapshot_of(vuln_stream, rem_stream)

    # then each was read once, to the end, and the figures equal the lists'
    assert reads == {"vulns": 1, "rems": 1}
    assert next(vuln_stream, None) is None
    assert next(rem_stream, None) is None
    assert streamed == snapshot_of(vulns, rems)


def test_aggregator_fed_one_record_at_a_time_matches_compute_snapshot() -> None:
    # given records added one by one, remediations interleaved with findings
    vulns, rems = mixed_records()
    aggregator = SnapshotAggregator(now=NOW, run_id="run-1")
    for record in itertools.chain.from_iterable(itertools.zip_longest(vulns, rems)):
        if isinstance(record, Vulnerability):
            aggregator.add_vulnerability(record)
        elif isinstance(record, Remediation):
            aggregator.add_remediation(record)

    # when the result is read (twice)
    first, second = aggregator.result(), aggregator.result()

    # then it is the snapshot of the same records, and reading it changes nothing
    assert first == snapshot_of(vulns, rems)
    assert second == first


def test_snapshot_round_trips_through_json_unchanged() -> None:
    # given a snapshot of varied records
    snapshot = snapshot_of(*mixed_records())

    # when it is written as strict JSON and read back
    text = json.dumps(snapshot, allow_nan=False)

    # then nothing is lost or changed
    assert json.loads(text) == snapshot
    assert json.dumps(json.loads(text)) == json.dumps(snapshot)


# ----- property: equal to a naive reference -----


def naive_snapshot(
    vulns: list[Vulnerability],
    rems: list[Remediation],
    now: datetime,
    *,
    include_deactivated: bool = False,
) -> dict[str, Any]:
    """The snapshot computed the slow, obvious way: filtered lists, len and sum."""
    active = [v for v in vulns if not v.is_deactivated_at(now)]
    live = vulns if include_deactivated else active
    with_deadline = [v for v in live if v.remediate_by_date is not None]

    def due_within(days: int) -> int:
        return len(
            [
                v
                for v in with_deadline
                if v.remediate_by_date is not None
                and now <= v.remediate_by_date <= now + timedelta(days=days)
            ]
        )

    ages = [(now - v.first_detected_date) // timedelta(days=1) for v in live]
    start = now - timedelta(days=90)
    window = [
        r for r in rems if r.remediation_date is not None and start <= r.remediation_date <= now
    ]

    def figures(chosen: list[Remediation]) -> dict[str, Any]:
        times = [r.time_to_remediate for r in chosen if r.time_to_remediate is not None]
        verdicts = [r.on_time for r in chosen if r.on_time is not None]
        return {
            "count": len(chosen),
            "meanDaysToRemediate": (
                round(sum(times, timedelta()) / (len(times) * timedelta(days=1)), 2)
                if times
                else None
            ),
            "withSla": len(verdicts),
            "onTime": verdicts.count(True),
            "onTimeRate": round(verdicts.count(True) / len(verdicts), 4) if verdicts else None,
        }

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    integrations = sorted({v.integration_id for v in live})
    return {
        "schemaVersion": 2,
        "computedAt": iso(now),
        "runId": "run-1",
        "includesDeactivated": include_deactivated,
        "totals": {
            "open": len(live),
            "deactivated": len(vulns) - len(active),
            "overdue": len([v for v in live if v.is_overdue_at(now)]),
            "noSla": len(live) - len(with_deadline),
        },
        "openBySeverity": {s: len([v for v in live if v.severity == s]) for s in SEVERITY_NAMES},
        "openByIntegration": {
            i: len([v for v in live if v.integration_id == i]) for i in integrations
        },
        "openByAssetType": {
            **{t.value: len([v for v in live if v.asset_type == t]) for t in AssetType},
            "UNKNOWN": len([v for v in live if v.asset_type is None]),
        },
        "overdueBySeverity": {
            s: len([v for v in live if v.severity == s and v.is_overdue_at(now)])
            for s in SEVERITY_NAMES
        },
        "due": {f"within{d}Days": due_within(d) for d in (7, 14, 30)},
        "ageing": {
            "0-30": len([a for a in ages if a <= 30]),
            "31-90": len([a for a in ages if 31 <= a <= 90]),
            "91-180": len([a for a in ages if 91 <= a <= 180]),
            "181-365": len([a for a in ages if 181 <= a <= 365]),
            ">365": len([a for a in ages if a > 365]),
        },
        "fixable": {
            "fixable": len([v for v in live if v.is_fixable]),
            "notFixable": len([v for v in live if not v.is_fixable]),
        },
        "remediations": {
            "windowStart": iso(start),
            "windowEnd": iso(now),
            "bySeverity": {
                s: figures([r for r in window if r.severity == s]) for s in SEVERITY_NAMES
            },
            "all": figures(window),
        },
    }


# Day offsets from now at every edge the snapshot has (ageing, due windows, remediation window).
EDGE_DAYS = [-366, -365, -181, -180, -91, -90, -31, -30, 0, 7, 14, 30]
whole_days = st.one_of(st.sampled_from(EDGE_DAYS), st.integers(-800, 800))
# Offsets that favour the edges: whole days, a microsecond either side, or anything.
offsets = st.one_of(
    whole_days.map(lambda days: days * DAY),
    st.tuples(whole_days, st.sampled_from([-1, 1])).map(
        lambda pair: pair[0] * DAY + pair[1] * MICROSECOND
    ),
    st.timedeltas(min_value=-800 * DAY, max_value=800 * DAY),
)
moments = offsets.map(lambda offset: NOW + offset)

vulnerabilities = st.builds(
    Vulnerability,
    id=st.just("vuln"),
    name=st.just("CVE"),
    severity=st.sampled_from(Severity),
    integration_id=st.sampled_from(["snyk", "inspector", "aws"]),
    target_id=st.just("asset"),
    is_fixable=st.booleans(),
    first_detected_date=moments,
    remediate_by_date=st.none() | moments,
    deactivated=st.booleans(),
    deactivated_indefinitely=st.booleans(),
    deactivated_until=st.none() | moments,
    asset_type=st.none() | st.sampled_from(AssetType),
)


@st.composite
def remediations(draw: st.DrawFn) -> Remediation:
    """A remediation whose deadline is sometimes exactly its remediationDate."""
    remediated = draw(st.none() | moments)
    deadline = draw(st.none() | moments | st.just(remediated))
    return Remediation(
        id="rem",
        vulnerability_id="vuln",
        vulnerable_asset_id="asset",
        severity=draw(st.sampled_from(Severity)),
        detected_date=draw(moments),
        sla_deadline_date=deadline,
        remediation_date=remediated,
    )


@settings(max_examples=200, deadline=None)
@given(vulns=st.lists(vulnerabilities, max_size=40), rems=st.lists(remediations(), max_size=40))
def test_snapshot_equals_a_naive_reference_on_random_records(
    vulns: list[Vulnerability], rems: list[Remediation]
) -> None:
    # given random findings and remediations around now
    # when the snapshot is computed from one-shot iterators
    snapshot = compute_snapshot(iter(vulns), iter(rems), now=NOW, run_id="run-1")

    # then it equals the obvious list-based computation, and is JSON
    assert snapshot == naive_snapshot(vulns, rems, NOW)
    assert json.loads(json.dumps(snapshot, allow_nan=False)) == snapshot


@settings(max_examples=100, deadline=None)
@given(vulns=st.lists(vulnerabilities, max_size=40), rems=st.lists(remediations(), max_size=20))
def test_the_snapshot_with_deactivated_findings_equals_a_naive_reference(
    vulns: list[Vulnerability], rems: list[Remediation]
) -> None:
    # given random findings, some deactivated at now
    # when one pass computes both snapshots
    aggregator = SnapshotAggregator(now=NOW, run_id="run-1")
    for finding in vulns:
        aggregator.add_vulnerability(finding)
    for remediation in rems:
        aggregator.add_remediation(remediation)
    # then each equals the obvious computation over its own population
    assert aggregator.result() == naive_snapshot(vulns, rems, NOW)
    assert aggregator.result(include_deactivated=True) == naive_snapshot(
        vulns, rems, NOW, include_deactivated=True
    )


def test_a_snapshot_stored_with_schema_1_reads_as_the_current_schema() -> None:
    # given a snapshot as the previous version computed and stored it (snake_case)
    now = NOW
    findings = [
        vuln(integration_id="no_sla"),  # an id that is also a schema 1 name stays as it is
        vuln(severity=Severity.LOW, remediate_by_date=None),
    ]
    rems = [rem(), rem(severity=Severity.LOW, sla_deadline_date=None)]
    current = compute_snapshot(findings, rems, now=now, run_id="run-1")
    legacy = _as_schema_1(current)
    # when it is read
    upgraded = upgrade_snapshot(legacy)
    # then it is the snapshot this version computes from the same records
    assert upgraded == current
    assert upgrade_snapshot(current) == current


def _as_schema_1(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snake_case document schema version 1 stored (integration ids are data)."""

    def snake(name: str) -> str:
        return re.sub(r"(?<=[a-z])(?=[A-Z0-9])|(?<=[0-9])(?=[A-Z])", "_", name).lower()

    def walk(value: Any, data_keys: bool) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            (key if data_keys else snake(key)): walk(inner, not data_keys and key in DATA_KEYED)
            for key, inner in value.items()
        }

    legacy: dict[str, Any] = walk(snapshot, False)
    del legacy["includes_deactivated"]
    legacy["schema_version"] = 1
    return legacy


DATA_KEYED = {
    "openBySeverity",
    "openByIntegration",
    "openByAssetType",
    "overdueBySeverity",
    "ageing",
    "bySeverity",
}


# ----- constant memory and throughput -----


def record_pools() -> tuple[list[Vulnerability], list[Remediation]]:
    """A few dozen varied records, reused so that a long stream allocates no new ones."""
    vulns = [
        vuln(
            severity=list(Severity)[n % 4],
            integration_id=f"scanner-{n % 5}",
            is_fixable=n % 2 == 0,
            first_detected_date=NOW - n * 9 * DAY,
            remediate_by_date=None if n % 7 == 0 else NOW + (n - 20) * DAY,
            deactivated=n % 11 == 0,
            asset_type=None if n % 9 == 0 else list(AssetType)[n % 8],
        )
        for n in range(47)
    ]
    rems = [
        rem(
            severity=list(Severity)[n % 4],
            detected_date=NOW - (n * 3 + 30) * DAY,
            sla_deadline_date=None if n % 5 == 0 else NOW - n * 2 * DAY,
            remediation_date=NOW - n * 2 * DAY - timedelta(hours=n),
        )
        for n in range(53)
    ]
    return vulns, rems


def stream[T](pool: list[T], count: int) -> Iterator[T]:
    return itertools.islice(itertools.cycle(pool), count)


def test_200k_record_streams_are_aggregated_in_well_under_a_megabyte() -> None:
    # given generators of 200,000 findings and 200,000 remediations built from small pools
    vulns, rems = record_pools()
    vuln_stream, rem_stream = stream(vulns, 200_000), stream(rems, 200_000)

    # when they are aggregated under tracemalloc
    tracemalloc.start()
    try:
        snapshot = snapshot_of(vuln_stream, rem_stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then every record was counted and no record was kept (a list of them alone is 1.6 MB)
    totals = snapshot["totals"]
    assert totals["open"] + totals["deactivated"] == 200_000
    assert snapshot["remediations"]["all"]["count"] > 0
    assert peak < 1_000_000
