"""Unit tests of the stand-in's deterministic data generator (pure: no sockets, no clock)."""

from __future__ import annotations

import itertools
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localstage.vanta_data import (
    ASSET_TYPES,
    SEVERITIES,
    SLA_DAYS,
    AssetQuery,
    DataError,
    Dataset,
    InvalidCursorError,
    RemediationQuery,
    Revision,
    VulnerabilityQuery,
    format_date,
    parse_date,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from localstage.vanta_data import JsonObject, Page

NOW = datetime(2025, 6, 1, tzinfo=UTC)
SMALL = Dataset(seed=11, vulnerability_count=3000, asset_count=120, remediation_count=800, now=NOW)
ALL = VulnerabilityQuery(include_without_sla=True)
WITH_SLA = VulnerabilityQuery(include_without_sla=False)

STR = (str,)
STR_OR_NULL = (str, type(None))
NUM_OR_NULL = (int, float, type(None))
VULNERABILITY_FIELDS: dict[str, tuple[type, ...]] = {
    "id": STR,
    "name": STR,
    "description": STR,
    "integrationId": STR,
    "targetId": STR,
    "externalURL": STR,
    "packageIdentifier": STR_OR_NULL,
    "vulnerabilityType": STR,
    "firstDetectedDate": STR,
    "sourceDetectedDate": STR_OR_NULL,
    "lastDetectedDate": STR_OR_NULL,
    "remediateByDate": STR_OR_NULL,
    "severity": STR,
    "cvssSeverityScore": NUM_OR_NULL,
    "scannerScore": NUM_OR_NULL,
    "isFixable": (bool,),
    "relatedVulns": (list,),
    "relatedUrls": (list,),
    "fixedVersion": STR_OR_NULL,
    "deactivateMetadata": (dict, type(None)),
}
REMEDIATION_FIELDS: dict[str, tuple[type, ...]] = {
    "id": STR,
    "vulnerabilityId": STR,
    "vulnerableAssetId": STR,
    "severity": STR,
    "detectedDate": STR_OR_NULL,
    "slaDeadlineDate": STR_OR_NULL,
    "remediationDate": STR_OR_NULL,
}
ASSET_FIELDS: dict[str, tuple[type, ...]] = {
    "id": STR,
    "name": STR,
    "assetType": STR,
    "hasBeenScanned": (bool,),
    "imageScanTag": STR_OR_NULL,
    "scanners": (list,),
}
NULLABLE_VULNERABILITY_FIELDS = (
    "packageIdentifier",
    "sourceDetectedDate",
    "lastDetectedDate",
    "remediateByDate",
    "cvssSeverityScore",
    "scannerScore",
    "fixedVersion",
    "deactivateMetadata",
)
DATE_FIELDS = ("firstDetectedDate", "sourceDetectedDate", "lastDetectedDate", "remediateByDate")


def _walk(fetch: Callable[[str | None], Page]) -> list[JsonObject]:
    """Follow endCursor while hasNextPage, as the sync does."""
    records: list[JsonObject] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        records.extend(page.items)
        body = page.body()["results"]["pageInfo"]
        if not body["hasNextPage"]:
            return records
        cursor = body["endCursor"]


def _ids(records: list[JsonObject]) -> list[str]:
    return [r["id"] for r in records]


def _assert_shape(record: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    for name, types in fields.items():
        assert name in record, name
        assert isinstance(record[name], types), (name, record[name])


def test_same_seed_gives_identical_records_and_another_seed_differs() -> None:
    # given two data sets with one seed, and one with another
    again = Dataset(
        seed=11, vulnerability_count=3000, asset_count=120, remediation_count=800, now=NOW
    )
    other = Dataset(
        seed=12, vulnerability_count=3000, asset_count=120, remediation_count=800, now=NOW
    )
    # when the first records are generated
    first = list(itertools.islice(SMALL.iter_vulnerabilities(), 200))
    # then the seed alone decides them
    assert first == list(itertools.islice(again.iter_vulnerabilities(), 200))
    assert list(SMALL.iter_assets()) == list(again.iter_assets())
    assert list(SMALL.iter_remediations()) == list(again.iter_remediations())
    assert _ids(first) != _ids(list(itertools.islice(other.iter_vulnerabilities(), 200)))


def test_vulnerabilities_carry_every_contract_field_with_its_type() -> None:
    # given the whole small data set
    records = list(SMALL.iter_vulnerabilities())
    # then every contract field is present with the contract's type
    for record in records:
        _assert_shape(record, VULNERABILITY_FIELDS)
        assert record["severity"] in SEVERITIES
        assert record["vulnerabilityType"] in {"COMMON", "CONFIGURATION", "GROUPED"}
        for name in DATE_FIELDS:
            if record[name] is not None:
                assert format_date(parse_date(record[name])) == record[name]
                assert record[name].endswith("Z")
        if record["deactivateMetadata"] is not None:
            assert set(record["deactivateMetadata"]) == {
                "isVulnDeactivatedIndefinitely",
                "deactivatedUntilDate",
                "deactivationReason",
                "deactivatedOnDate",
                "deactivatedBy",
            }
    # and nullable fields really are null sometimes, and set sometimes
    for name in NULLABLE_VULNERABILITY_FIELDS:
        values = {record[name] is None for record in records}
        assert values == {True, False}, name
    # and scanSource is absent from some records
    assert {"scanSource" in record for record in records} == {True, False}


def test_remediations_and_assets_carry_every_contract_field() -> None:
    for remediation in SMALL.iter_remediations():
        _assert_shape(remediation, REMEDIATION_FIELDS)
        assert remediation["severity"].upper() in SEVERITIES
    for asset in SMALL.iter_assets():
        _assert_shape(asset, ASSET_FIELDS)
        assert asset["assetType"] in ASSET_TYPES
        for scanner in asset["scanners"]:
            assert {"resourceId", "integrationId", "targetId"} <= set(scanner)


def test_some_remediation_severities_are_lower_case_as_in_the_documented_example() -> None:
    severities = {r["severity"] for r in SMALL.iter_remediations()}
    assert any(s.islower() for s in severities)
    assert any(s.isupper() for s in severities)


def test_findings_are_ordered_by_sla_deadline_with_findings_without_sla_last() -> None:
    # given every finding in listing order
    records = list(SMALL.iter_vulnerabilities(ALL))
    deadlines = [r["remediateByDate"] for r in records]
    # then dated findings come first, ascending by parsed date, then the undated ones
    dated = [parse_date(d) for d in deadlines if d is not None]
    assert dated == sorted(dated)
    first_null = deadlines.index(None)
    assert all(d is None for d in deadlines[first_null:])
    assert 0 < len(deadlines) - first_null < len(deadlines) // 5


def test_default_http_query_leaves_out_findings_without_sla() -> None:
    with_sla = list(SMALL.iter_vulnerabilities(WITH_SLA))
    assert all(r["remediateByDate"] is not None for r in with_sla)
    nulls = sum(1 for r in SMALL.iter_vulnerabilities(ALL) if r["remediateByDate"] is None)
    assert len(with_sla) + nulls == SMALL.count_vulnerabilities(ALL) == 3000
    assert SMALL.count_vulnerabilities(WITH_SLA) == len(with_sla)


def test_detection_lies_in_the_past_and_deadline_is_detection_plus_sla() -> None:
    now_ms = parse_date(NOW.isoformat())
    for record in SMALL.iter_vulnerabilities(ALL):
        first = parse_date(record["firstDetectedDate"])
        assert first < now_ms
        if record["remediateByDate"] is not None:
            sla_ms = SLA_DAYS[record["severity"]] * 86_400_000
            assert parse_date(record["remediateByDate"]) - first == sla_ms


def test_every_finding_joins_to_an_asset_of_the_same_integration() -> None:
    for record in itertools.islice(SMALL.iter_vulnerabilities(ALL), 500):
        asset = SMALL.get_asset(record["targetId"])
        assert asset is not None
        assert record["integrationId"] in {s["integrationId"] for s in asset["scanners"]}


def test_lookup_by_id_returns_the_listed_record_and_none_for_unknown_ids() -> None:
    for record in itertools.islice(SMALL.iter_vulnerabilities(ALL), 0, 3000, 97):
        assert SMALL.get_vulnerability(record["id"]) == record
    assert SMALL.get_vulnerability("nope") is None
    assert SMALL.get_vulnerability(SMALL.vulnerability_id(3000)) is None
    assert SMALL.get_vulnerability(SMALL.asset_id(1)) is None  # another kind's id
    assert SMALL.get_asset(SMALL.asset_id(119)) is not None
    assert SMALL.get_asset(SMALL.asset_id(120)) is None


@pytest.mark.parametrize("page_size", [1, 7, 10, 100])
def test_page_walk_returns_each_record_once_in_listing_order(page_size: int) -> None:
    data = Dataset(seed=5, vulnerability_count=350, asset_count=30, remediation_count=120)
    walked = _walk(lambda cursor: data.page_vulnerabilities(ALL, page_size, cursor))
    assert _ids(walked) == _ids(list(data.iter_vulnerabilities(ALL)))
    assets = _walk(lambda cursor: data.page_assets(AssetQuery(), page_size, cursor))
    assert _ids(assets) == _ids(list(data.iter_assets()))
    rems = _walk(lambda cursor: data.page_remediations(RemediationQuery(), page_size, cursor))
    assert _ids(rems) == _ids(list(data.iter_remediations()))


def test_page_info_marks_first_and_last_pages() -> None:
    data = Dataset(seed=5, vulnerability_count=25, asset_count=3)
    first = data.page_vulnerabilities(ALL, 20)
    info = first.body()["results"]["pageInfo"]
    assert info["hasNextPage"] is True
    assert info["hasPreviousPage"] is False
    assert info["startCursor"] == first.cursors[0]
    last = data.page_vulnerabilities(ALL, 20, info["endCursor"])
    last_info = last.body()["results"]["pageInfo"]
    assert (len(last.items), last_info["hasNextPage"], last_info["hasPreviousPage"]) == (
        5,
        False,
        True,
    )


def test_empty_listing_has_null_cursors() -> None:
    data = Dataset(seed=5, vulnerability_count=0, asset_count=1, remediation_count=0)
    info = data.page_vulnerabilities(ALL, 10).body()["results"]["pageInfo"]
    assert info == {
        "endCursor": None,
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
    }


@pytest.mark.parametrize("cursor", ["garbage!", "", "YTowOjE", "djo5OjE"])
def test_foreign_or_broken_cursors_are_rejected(cursor: str) -> None:
    # "YTowOjE" is an asset cursor, "djo5OjE" names region 9
    with pytest.raises(InvalidCursorError):
        SMALL.page_vulnerabilities(ALL, 10, cursor or "=")


def test_filters_select_exactly_what_a_brute_force_scan_selects() -> None:
    everything = list(SMALL.iter_vulnerabilities(ALL))
    asset_id = everything[0]["targetId"]
    cases: list[tuple[VulnerabilityQuery, Callable[[JsonObject], bool]]] = [
        (
            VulnerabilityQuery(severities=frozenset({"CRITICAL", "HIGH"})),
            lambda r: r["severity"] in {"CRITICAL", "HIGH"},
        ),
        (VulnerabilityQuery(is_fixable=True), lambda r: r["isFixable"] is True),
        (
            VulnerabilityQuery(integration_ids=frozenset({"snyk"})),
            lambda r: r["integrationId"] == "snyk",
        ),
        (VulnerabilityQuery(is_deactivated=True), lambda r: r["deactivateMetadata"] is not None),
        (VulnerabilityQuery(vulnerable_asset_id=asset_id), lambda r: r["targetId"] == asset_id),
        (VulnerabilityQuery(q="openssl"), lambda r: "openssl" in r["description"].lower()),
    ]
    for query, keep in cases:
        expected = [r["id"] for r in everything if keep(r)]
        assert expected
        assert _ids(list(SMALL.iter_vulnerabilities(query))) == expected


def test_sla_deadline_window_is_half_open_and_drops_undated_findings() -> None:
    everything = list(SMALL.iter_vulnerabilities(ALL))
    lo = parse_date("2024-09-01T00:00:00Z")
    hi = parse_date("2025-01-01T00:00:00Z")
    query = VulnerabilityQuery(sla_after_ms=lo, sla_before_ms=hi)
    expected = [
        r["id"]
        for r in everything
        if r["remediateByDate"] is not None and lo <= parse_date(r["remediateByDate"]) < hi
    ]
    assert expected
    assert _ids(list(SMALL.iter_vulnerabilities(query))) == expected


def test_remediation_filters_match_a_brute_force_scan() -> None:
    everything = list(SMALL.iter_remediations())
    dates = [parse_date(r["remediationDate"]) for r in everything]
    assert dates == sorted(dates)
    after = dates[100]
    before = dates[300]
    in_window = list(
        SMALL.iter_remediations(
            RemediationQuery(remediated_after_ms=after, remediated_before_ms=before)
        )
    )
    assert _ids(in_window) == _ids(everything[100:300])
    low = list(SMALL.iter_remediations(RemediationQuery(severities=frozenset({"LOW"}))))
    assert _ids(low) == [r["id"] for r in everything if r["severity"].upper() == "LOW"]
    late = list(SMALL.iter_remediations(RemediationQuery(is_remediated_on_time=False)))
    assert late
    for record in late:
        sla = record["slaDeadlineDate"]
        assert sla is None or parse_date(record["remediationDate"]) > parse_date(sla)


def test_revision_changes_removes_and_adds_exactly_what_it_says() -> None:
    # given revision 2: 1 % changed, 5 removed, 10 added
    revised = SMALL.with_revision(
        Revision(number=2, change_fraction=0.01, removed_count=5, added_count=10)
    )
    base = {r["id"]: r for r in SMALL.iter_vulnerabilities(ALL)}
    after = {r["id"]: r for r in revised.iter_vulnerabilities(ALL)}
    removed = set(revised.removed_vulnerability_ids())
    added = set(revised.added_vulnerability_ids())
    changed = set(revised.changed_vulnerability_ids())
    # then the counts are what the revision says
    assert (len(removed), len(added)) == (5, 10)
    assert 10 <= len(changed) <= 55  # 1 % of 3000, binomial spread
    assert set(base) - set(after) == removed
    assert set(after) - set(base) == added
    # and exactly the changed records differ
    differing = {i for i in set(base) & set(after) if base[i] != after[i]}
    assert differing == changed
    for record_id in removed:
        assert revised.get_vulnerability(record_id) is None
    # and the added findings have the latest deadlines
    dated = list(revised.iter_vulnerabilities(WITH_SLA))
    added_dated = [i for i in added if after[i]["remediateByDate"] is not None]
    assert {r["id"] for r in dated[-len(added_dated) :]} == set(added_dated)


def test_another_revision_number_picks_other_records_and_base_is_revision_one() -> None:
    rev2 = SMALL.with_revision(Revision(number=2, change_fraction=0.05))
    rev3 = SMALL.with_revision(Revision(number=3, change_fraction=0.05))
    assert set(rev2.changed_vulnerability_ids()) != set(rev3.changed_vulnerability_ids())
    assert list(SMALL.changed_vulnerability_ids()) == []
    assert SMALL.with_revision(Revision()) == SMALL


def test_explicit_changed_and_removed_ids_apply() -> None:
    target = SMALL.vulnerability_id(42)
    gone = SMALL.vulnerability_id(43)
    revised = SMALL.with_revision(
        Revision(number=4, changed_ids=frozenset({target}), removed_ids=frozenset({gone}))
    )
    assert list(revised.changed_vulnerability_ids()) == [target]
    assert revised.get_vulnerability(gone) is None
    changed = revised.get_vulnerability(target)
    assert changed is not None
    assert changed != SMALL.get_vulnerability(target)


def test_added_remediations_come_after_the_base_ones() -> None:
    revised = SMALL.with_revision(Revision(added_remediations=7))
    assert revised.count_remediations() == 807
    assert _ids(list(revised.iter_remediations()))[:800] == _ids(list(SMALL.iter_remediations()))


def test_json_form_round_trips_and_rejects_unknown_keys() -> None:
    revised = SMALL.with_revision(Revision(number=2, change_fraction=0.5, removed_count=1))
    assert Dataset.from_dict(revised.to_dict()) == revised
    assert SMALL.updated({"revision": {"number": 2}}).revision == Revision(number=2)
    with pytest.raises(DataError, match="unknown dataset fields"):
        SMALL.updated({"vulns": 3})
    with pytest.raises(DataError, match="unknown revision fields"):
        Revision.from_dict({"changes": 3})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vulnerability_count": -1},
        {"asset_count": 0},
        {"now": datetime(2025, 1, 1)},  # naive on purpose
        {"revision": Revision(change_fraction=1.5)},
        {"revision": Revision(number=0)},
        {"revision": Revision(removed_count=10_000)},
    ],
)
def test_invalid_settings_fail_loudly(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DataError):
        Dataset(**kwargs)


def test_dates_format_like_the_contract() -> None:
    moment = datetime(2024, 4, 1, tzinfo=UTC)
    assert format_date(parse_date(moment.isoformat())) == "2024-04-01T00:00:00.000Z"
    assert parse_date("2024-04-01T00:00:00.000Z") == parse_date("2024-04-01")
    assert parse_date("2024-04-01T02:00:00+02:00") == parse_date("2024-04-01T00:00:00Z")
    with pytest.raises(DataError):
        parse_date("yesterday")
    assert format_date(parse_date((moment + timedelta(milliseconds=7)).isoformat())).endswith(
        ".007Z"
    )


def test_a_million_findings_cost_nothing_until_listed() -> None:
    # given a million-finding data set, when a page deep inside it is fetched
    huge = Dataset(seed=1, vulnerability_count=1_000_000, asset_count=10_000)
    first = huge.page_vulnerabilities(WITH_SLA, 100)
    deep = huge.get_vulnerability(huge.vulnerability_id(999_999))
    # then it answers at once and agrees with lookups
    assert len(first.items) == 100
    assert huge.get_vulnerability(first.items[50]["id"]) == first.items[50]
    assert deep is None or deep["id"] == huge.vulnerability_id(999_999)


def test_listing_is_lazy_memory_stays_flat_over_200000_records() -> None:
    # given 200,000 findings
    data = Dataset(seed=2, vulnerability_count=200_000, asset_count=100)
    # when every id is streamed under tracemalloc
    tracemalloc.start()
    try:
        count = sum(1 for _ in data.iter_vulnerability_ids())
        _, peak_ids = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        built = sum(1 for _ in itertools.islice(data.iter_vulnerabilities(), 5000))
        _, peak_records = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then nothing accumulates: the peak is a few records, not the listing
    assert count == 200_000
    assert built == 5000
    assert peak_ids < 256 * 1024
    assert peak_records < 256 * 1024


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 120),
    page_size=st.integers(1, 30),
    include=st.booleans(),
)
def test_any_walk_equals_the_oracle(seed: int, count: int, page_size: int, include: bool) -> None:
    data = Dataset(seed=seed, vulnerability_count=count, asset_count=5, remediation_count=10)
    query = VulnerabilityQuery(include_without_sla=include)
    walked = _walk(lambda cursor: data.page_vulnerabilities(query, page_size, cursor))
    assert _ids(walked) == _ids(list(data.iter_vulnerabilities(query)))
    assert len(walked) == data.count_vulnerabilities(query)
