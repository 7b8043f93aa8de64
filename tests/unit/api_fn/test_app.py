"""Every route and every error of the API, resolved in-process from API Gateway REST events."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fakes.api_store import NOW, Api, make_api, raw_finding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_fn.app import NO_SYNC_MESSAGE, NO_VARIANT_MESSAGE
from api_fn.params import FINDING_PARAMETERS
from vulnstats.errors import StorageError
from vulnstats.items import to_item
from vulnstats.models import AssetType, parse_vulnerability
from vulnstats.ports import LastComplete, RunRecord, RunStatus
from vulnstats.queue import QueueError
from vulnstats.stats import compute_snapshot
from vulnstats.triggers import ManualTrigger, parse_trigger

if TYPE_CHECKING:
    from collections.abc import Mapping

COMPUTED = NOW - timedelta(hours=3)
FINDINGS = [
    parse_vulnerability(raw_finding("v1", severity="HIGH")),
    parse_vulnerability(
        raw_finding(
            "v2", severity="LOW", deactivateMetadata={"isVulnDeactivatedIndefinitely": True}
        ),
    ),
]
SNAPSHOT = compute_snapshot(FINDINGS, [], now=COMPUTED, run_id="20261122T060000Z-aaaa0001")
WITH_DEACTIVATED = compute_snapshot(
    FINDINGS, [], now=COMPUTED, run_id="20261122T060000Z-aaaa0001", include_deactivated=True
)
# What the previous version stored: schema 1, snake_case, no snapshot with deactivated findings.
LEGACY_SNAPSHOT = {
    "schema_version": 1,
    "computed_at": "2026-11-21T06:10:00.000Z",
    "run_id": "20261121T060000Z-aaaa0000",
    "totals": {"open": 1, "deactivated": 0, "overdue": 0, "no_sla": 1},
    "open_by_severity": {"LOW": 1, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 0},
    "open_by_integration": {"no_sla": 1},
    "due": {"within_7_days": 0, "within_14_days": 0, "within_30_days": 0},
    "fixable": {"fixable": 1, "not_fixable": 0},
    "remediations": {
        "window_start": "2026-08-23T06:10:00.000Z",
        "window_end": "2026-11-21T06:10:00.000Z",
        "by_severity": {"LOW": {"count": 2, "mean_days_to_remediate": 1.5, "on_time_rate": 0.5}},
        "all": {"count": 2, "mean_days_to_remediate": 1.5, "with_sla": 2, "on_time": 1},
    },
}
LEGACY_ITEM = to_item(
    {
        "pk": "STATS",
        "sk": "DAY#2026-11-21",
        "snapshot": json.dumps(LEGACY_SNAPSHOT),
        "computed_at": "2026-11-21T06:10:00.000000Z",
        "run_id": "20261121T060000Z-aaaa0000",
    }
)


def _with_snapshot(api: Api) -> None:
    # an older day stored by the previous version, then today's by this one
    api.store.add_snapshot_item(LEGACY_ITEM)
    api.store.add_snapshot(
        SNAPSHOT,
        run_id="20261122T060000Z-aaaa0001",
        computed_at=COMPUTED,
        with_deactivated=WITH_DEACTIVATED,
    )


def _run(run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        status=status,
        trigger="scheduled",
        started_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(minutes=50),
        finished_at=NOW - timedelta(minutes=50) if status is RunStatus.SUCCEEDED else None,
        reason="nightly",
    )


def _findings(api: Api) -> None:
    past, soon, later = (
        "2026-11-01T00:00:00.000Z",
        "2026-11-25T00:00:00.000Z",
        "2027-03-01T00:00:00.000Z",
    )
    api.store.add_finding(
        raw_finding("v1", severity="HIGH", remediateByDate=past), AssetType.SERVER
    )
    api.store.add_finding(
        raw_finding("v2", severity="HIGH", remediateByDate=soon), AssetType.SERVER
    )
    api.store.add_finding(
        raw_finding("v3", severity="LOW", remediateByDate=None, integrationId="github"),
        AssetType.CODE_REPOSITORY,
    )
    api.store.add_finding(
        raw_finding("v4", severity="CRITICAL", remediateByDate=later, isFixable=False),
        AssetType.CONTAINER,
    )
    api.store.add_finding(
        raw_finding(
            "v5",
            severity="HIGH",
            remediateByDate=past,
            deactivateMetadata={"isVulnDeactivatedIndefinitely": True},
        ),
        AssetType.SERVER,
    )


def _ids(body: Mapping[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


# ----- /health -----


def test_health_before_any_sync_reports_no_data_age(api: Api) -> None:
    answer = api.call("GET", "/health")
    assert answer.status == 200
    assert answer.body == {
        "status": "ok",
        "version": "1.4.2",
        "stage": "test",
        "lastSuccessfulSync": None,
        "dataAgeSeconds": None,
    }
    assert answer.headers["cache-control"] == "no-store"


def test_health_reports_the_last_successful_sync_and_its_age(api: Api) -> None:
    api.store.last = LastComplete(
        "20261122T090000Z-abcd0001", NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
    )
    answer = api.call("GET", "/health")
    assert answer.body["lastSuccessfulSync"] == {
        "runId": "20261122T090000Z-abcd0001",
        "finishedAt": "2026-11-22T09:05:00Z",
    }
    assert answer.body["dataAgeSeconds"] == 600
    assert api.store.calls == ["last_complete"]  # one read, nothing else


def test_health_says_degraded_when_the_table_cannot_be_read(api: Api) -> None:
    api.store.failure = StorageError("DynamoDB table t: GetItem failed: boom")
    answer = api.call("GET", "/health")
    assert answer.status == 200
    assert answer.body["status"] == "degraded"
    assert "boom" not in json.dumps(answer.body)


# ----- /health/ready -----


def test_ready_when_the_last_sync_is_recent(api: Api) -> None:
    api.store.last = LastComplete(
        "20261122T090000Z-abcd0001", NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
    )
    answer = api.call("GET", "/health/ready")
    assert answer.status == 200
    assert answer.body["status"] == "ready"
    assert answer.body["reason"] is None
    assert answer.body["dataAgeSeconds"] == 600
    assert answer.body["maxDataAgeSeconds"] == 7200
    assert answer.headers["cache-control"] == "no-store"
    assert api.store.calls == ["last_complete"]  # one read: cheap for a health checker


def test_not_ready_when_the_last_sync_is_older_than_the_bound(api: Api) -> None:
    # given a last successful sync one second past the bound
    api.store.last = LastComplete("r-old", NOW - timedelta(hours=3), NOW - timedelta(seconds=7201))
    answer = api.call("GET", "/health/ready")
    assert answer.status == 503
    assert answer.body["reason"] == "stale"
    assert answer.body["dataAgeSeconds"] == 7201
    assert "7201 s ago" in answer.body["message"]


def test_ready_at_exactly_the_bound(api: Api) -> None:
    api.store.last = LastComplete("r", NOW - timedelta(hours=3), NOW - timedelta(seconds=7200))
    assert api.call("GET", "/health/ready").status == 200


def test_not_ready_when_the_table_cannot_be_read(api: Api) -> None:
    api.store.failure = StorageError("DynamoDB table t: GetItem failed: boom")
    answer = api.call("GET", "/health/ready")
    assert answer.status == 503
    assert answer.body["reason"] == "table-unreadable"
    assert "boom" not in json.dumps(answer.body)
    # while /health, the liveness answer, stays 200
    assert api.call("GET", "/health").status == 200


def test_not_ready_before_any_sync(api: Api) -> None:
    answer = api.call("GET", "/health/ready")
    assert answer.status == 503
    assert answer.body["reason"] == "no-sync-yet"
    assert answer.body["lastSuccessfulSync"] is None


# ----- /stats and /stats/history -----


def test_stats_before_the_first_sync_is_503_with_a_clear_message(api: Api, load_event: Any) -> None:
    answer = api.send(load_event("api_get_stats.json"))
    assert answer.status == 503
    assert answer.body == {"message": NO_SYNC_MESSAGE}


def test_stats_serves_the_latest_snapshot_with_cache_headers(api: Api, load_event: Any) -> None:
    _with_snapshot(api)
    answer = api.send(load_event("api_get_stats.json"))
    assert answer.status == 200
    assert answer.body == {
        "runId": "20261122T060000Z-aaaa0001",
        "computedAt": "2026-11-22T06:15:00.000000Z",
        "snapshot": SNAPSHOT,
    }
    assert answer.body["snapshot"]["totals"] == {
        "open": 1,
        "deactivated": 1,
        "overdue": 0,
        "noSla": 0,
    }
    assert answer.headers["cache-control"] == "public, max-age=120"


def test_stats_with_include_deactivated_counts_deactivated_findings_as_open(api: Api) -> None:
    _with_snapshot(api)
    answer = api.call("GET", "/stats", query={"includeDeactivated": "true"})
    assert answer.status == 200
    snapshot = answer.body["snapshot"]
    assert snapshot == WITH_DEACTIVATED
    assert snapshot["includesDeactivated"] is True
    assert snapshot["totals"] == {"open": 2, "deactivated": 1, "overdue": 0, "noSla": 0}
    assert snapshot["openBySeverity"] == {"LOW": 1, "MEDIUM": 0, "HIGH": 1, "CRITICAL": 0}
    # false is the default snapshot, and anything else is refused by name
    assert api.call("GET", "/stats", query={"includeDeactivated": "false"}).body == (
        api.call("GET", "/stats").body
    )
    bad = api.call("GET", "/stats", query={"includeDeactivated": "yes"})
    assert bad.status == 400
    assert bad.body["parameter"] == "includeDeactivated"


def test_a_snapshot_stored_by_the_previous_version_is_served_in_camel_case(api: Api) -> None:
    # given only the snake_case snapshot an earlier version stored
    api.store.add_snapshot_item(LEGACY_ITEM)
    api.store.add_snapshot_item(LEGACY_ITEM | {"sk": {"S": "LATEST"}})
    # when /stats is asked
    answer = api.call("GET", "/stats")
    # then its figures come under the current names, data keys untouched
    assert answer.status == 200
    snapshot = answer.body["snapshot"]
    assert snapshot["schemaVersion"] == 2
    assert snapshot["includesDeactivated"] is False
    assert snapshot["totals"]["noSla"] == 1
    assert snapshot["openByIntegration"] == {"no_sla": 1}
    assert snapshot["due"] == {"within7Days": 0, "within14Days": 0, "within30Days": 0}
    assert snapshot["fixable"] == {"fixable": 1, "notFixable": 0}
    assert snapshot["remediations"]["windowEnd"] == "2026-11-21T06:10:00.000Z"
    assert snapshot["remediations"]["bySeverity"]["LOW"] == {
        "count": 2,
        "meanDaysToRemediate": 1.5,
        "onTimeRate": 0.5,
    }
    assert snapshot["remediations"]["all"]["withSla"] == 2
    # and the statistics over every finding, which it never computed, are a clear 404
    variant = api.call("GET", "/stats", query={"includeDeactivated": "true"})
    assert variant.status == 404
    assert variant.body == {"message": NO_VARIANT_MESSAGE}
    assert answer.headers["etag"].startswith('"')


def test_stats_answers_304_when_the_etag_still_matches(api: Api) -> None:
    _with_snapshot(api)
    etag = api.call("GET", "/stats").headers["etag"]
    again = api.call("GET", "/stats", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body is None
    assert again.headers["etag"] == etag
    weak_list = api.call("GET", "/stats", headers={"if-none-match": f'"x", W/{etag}'})
    assert weak_list.status == 304
    stale = api.call("GET", "/stats", headers={"If-None-Match": '"other"'})
    assert stale.status == 200


def test_etag_changes_when_a_new_snapshot_lands(api: Api) -> None:
    _with_snapshot(api)
    before = api.call("GET", "/stats").headers["etag"]
    newer = compute_snapshot(FINDINGS, [], now=NOW, run_id="20261122T090000Z-bbbb0002")
    api.store.add_snapshot(newer, run_id="20261122T090000Z-bbbb0002", computed_at=NOW)
    after = api.call("GET", "/stats", headers={"If-None-Match": before})
    assert after.status == 200
    assert after.headers["etag"] != before


def test_without_a_stage_cache_stats_must_be_revalidated(
    load_event: Any, lambda_context: Any
) -> None:
    api = make_api(load_event, lambda_context, ttl=0)
    _with_snapshot(api)
    assert api.call("GET", "/stats").headers["cache-control"] == "no-cache"


def test_history_lists_daily_snapshots_oldest_first(api: Api) -> None:
    _with_snapshot(api)
    answer = api.call("GET", "/stats/history", query={"days": "7"})
    assert answer.status == 200
    assert answer.body["days"] == 7
    assert [s["day"] for s in answer.body["snapshots"]] == ["2026-11-21", "2026-11-22"]
    assert answer.body["snapshots"][0]["snapshot"]["totals"]["noSla"] == 1
    assert "etag" in answer.headers
    etag = answer.headers["etag"]
    cached = api.call("GET", "/stats/history", query={"days": "7"}, headers={"If-None-Match": etag})
    assert cached.status == 304


def test_history_with_include_deactivated_leaves_out_days_stored_without_it(api: Api) -> None:
    _with_snapshot(api)
    answer = api.call("GET", "/stats/history", query={"days": "7", "includeDeactivated": "true"})
    assert answer.status == 200
    assert [s["day"] for s in answer.body["snapshots"]] == ["2026-11-22"]
    assert answer.body["snapshots"][0]["snapshot"] == WITH_DEACTIVATED


def test_history_defaults_to_30_days(api: Api) -> None:
    _with_snapshot(api)
    assert api.call("GET", "/stats/history").body["days"] == 30


@pytest.mark.parametrize("days", ["0", "366", "-1", "abc", "1.5", ""])
def test_history_days_out_of_range_is_400_naming_days(api: Api, days: str) -> None:
    _with_snapshot(api)
    answer = api.call("GET", "/stats/history", query={"days": days})
    assert answer.status == 400
    assert answer.body["parameter"] == "days"
    assert answer.body["message"].startswith("days: ")


def test_history_before_the_first_sync_is_503(api: Api) -> None:
    answer = api.call("GET", "/stats/history", query={"days": "3"})
    assert answer.status == 503
    assert answer.body == {"message": NO_SYNC_MESSAGE}


# ----- /vulnerabilities -----


def test_list_fixture_filters_by_severity_and_overdue(api: Api, load_event: Any) -> None:
    _findings(api)
    answer = api.send(load_event("api_list_vulnerabilities.json"))  # severity=high, overdue=true
    assert answer.status == 200
    assert _ids(answer.body) == ["v1"]  # v5 is deactivated, v2 not yet due
    item = answer.body["items"][0]
    assert item["severity"] == "HIGH"
    assert item["overdue"] is True
    assert item["assetType"] == "SERVER"
    assert item["deactivated"] is False
    assert answer.body["nextCursor"] is None
    assert answer.body["limit"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["v1", "v2", "v3", "v4"]),
        ({"severity": "High"}, ["v1", "v2"]),
        ({"overdue": "false"}, ["v2", "v3", "v4"]),
        ({"dueWithinDays": "7"}, ["v2"]),
        ({"dueWithinDays": "365"}, ["v2", "v4"]),
        ({"integrationId": "github"}, ["v3"]),
        ({"assetType": "container"}, ["v4"]),
        ({"fixable": "false"}, ["v4"]),
        ({"includeDeactivated": "true", "severity": "HIGH"}, ["v1", "v5", "v2"]),
        ({"overdue": "true", "dueWithinDays": "30"}, []),
    ],
)
def test_each_filter_narrows_the_listing(
    api: Api, query: dict[str, str], expected: list[str]
) -> None:
    _findings(api)
    answer = api.call("GET", "/vulnerabilities", query=query)
    assert answer.status == 200, answer.body
    assert _ids(answer.body) == expected


def test_walking_pages_returns_each_finding_once(api: Api) -> None:
    for n in range(23):
        api.store.add_finding(raw_finding(f"p{n:02d}", severity="MEDIUM" if n % 2 else "HIGH"))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        body = api.call("GET", "/vulnerabilities", query=query).body
        seen += _ids(body)
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"p{n:02d}" for n in range(23)]
    assert len(seen) == len(set(seen))
    assert pages == 6


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"severity": "URGENT"}, "severity"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"overdue": "yes"}, "overdue"),
        ({"fixable": "1"}, "fixable"),
        ({"dueWithinDays": "0"}, "dueWithinDays"),
        ({"dueWithinDays": "366"}, "dueWithinDays"),
        ({"assetType": "MAINFRAME"}, "assetType"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"sevrity": "HIGH"}, "sevrity"),
        ({"integrationId": " "}, "integrationId"),
    ],
)
def test_bad_listing_parameters_are_400_naming_the_parameter(
    api: Api, query: dict[str, str], parameter: str
) -> None:
    answer = api.call("GET", "/vulnerabilities", query=query)
    assert answer.status == 400
    assert answer.body["parameter"] == parameter
    assert answer.body["message"] == f"{parameter}: {answer.body['reason']}"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"severity": "X" * 65_000}, "severity"),
        ({"limit": "9" * 65_000}, "limit"),
        ({"overdue": "y" * 65_000}, "overdue"),
        ({"assetType": "M" * 65_000}, "assetType"),
        ({"s" * 65_000: "HIGH"}, "s" * 64),
    ],
    ids=["severity", "limit", "overdue", "assetType", "name"],
)
def test_a_huge_bad_value_is_named_in_the_400_without_being_echoed_whole(
    api: Api, query: dict[str, str], parameter: str
) -> None:
    # given a 65 KB value (or parameter name) the route refuses
    # when it is requested
    answer = api.call("GET", "/vulnerabilities", query=query)

    # then the 400 names the parameter and quotes only the start of a value, with its length
    assert answer.status == 400
    assert answer.body["parameter"] == parameter
    assert len(answer.body["message"]) < 400
    if parameter in query:
        assert "... (65000 characters)" in answer.body["reason"]


def test_unknown_severity_message_lists_the_choices(api: Api) -> None:
    body = api.call("GET", "/vulnerabilities", query={"severity": "urgent"}).body
    assert "LOW, MEDIUM, HIGH, CRITICAL" in body["reason"]


def test_a_cursor_reused_with_other_filters_is_refused(api: Api) -> None:
    for n in range(5):
        api.store.add_finding(raw_finding(f"c{n}"))
    cursor = api.call("GET", "/vulnerabilities", query={"limit": "2"}).body["nextCursor"]
    assert cursor
    answer = api.call(
        "GET", "/vulnerabilities", query={"limit": "2", "cursor": cursor, "fixable": "true"}
    )
    assert answer.status == 400
    assert answer.body["message"] == "cursor: does not match these filters"
    # the same cursor with another page size is fine
    assert api.call("GET", "/vulnerabilities", query={"limit": "3", "cursor": cursor}).status == 200


def test_get_vulnerability_returns_the_view_and_the_raw_record(api: Api) -> None:
    _findings(api)
    answer = api.call("GET", "/vulnerabilities/v4")
    assert answer.status == 200
    assert answer.body["id"] == "v4"
    assert answer.body["isFixable"] is False
    assert answer.body["record"]["description"] == "a finding"


def test_unknown_vulnerability_is_404(api: Api, load_event: Any) -> None:
    answer = api.send(load_event("api_get_vulnerability_missing.json"))
    assert answer.status == 404
    assert answer.body == {
        "message": "no vulnerability vuln-does-not-exist",
        "id": "vuln-does-not-exist",
    }


# ----- /sync/runs -----


def test_runs_are_listed_newest_first_up_to_the_limit(api: Api) -> None:
    for run_id in ("20261120T060000Z-a", "20261121T060000Z-b", "20261122T060000Z-c"):
        api.store.runs[run_id] = _run(run_id)
    answer = api.call("GET", "/sync/runs", query={"limit": "2"})
    assert answer.status == 200
    assert [r["runId"] for r in answer.body["runs"]] == ["20261122T060000Z-c", "20261121T060000Z-b"]
    run = answer.body["runs"][0]
    assert run["status"] == "succeeded"
    assert run["counts"]["fetched"] == 0
    assert run["finishedAt"] == "2026-11-22T08:25:00.000000Z"


@pytest.mark.parametrize("limit", ["0", "101", "x"])
def test_runs_limit_out_of_range_is_400(api: Api, limit: str) -> None:
    answer = api.call("GET", "/sync/runs", query={"limit": limit})
    assert answer.status == 400
    assert answer.body["parameter"] == "limit"


def test_one_run_by_id_and_404_for_an_unknown_one(api: Api) -> None:
    api.store.runs["20261122T060000Z-c"] = _run("20261122T060000Z-c", RunStatus.RUNNING)
    found = api.call("GET", "/sync/runs/20261122T060000Z-c")
    assert found.status == 200
    assert found.body["status"] == "running"
    assert found.body["finishedAt"] is None
    missing = api.call("GET", "/sync/runs/nope")
    assert missing.status == 404
    assert missing.body["message"] == "no sync run nope"


# ----- POST /sync -----


def test_post_sync_starts_a_run_and_answers_202_with_its_id(api: Api, load_event: Any) -> None:
    answer = api.send(load_event("api_post_sync.json"))
    assert answer.status == 202
    run_id = "20261122T091500Z-0000abcd"
    assert answer.body == {
        "runId": run_id,
        "status": "accepted",
        "links": {"run": f"/sync/runs/{run_id}"},
    }
    # the sync function reads the event as a manual start of exactly the promised run
    assert [parse_trigger(event) for event in api.starter.events] == [
        ManualTrigger(reason="re-sync after the scanner outage", run_id=run_id)
    ]


def test_post_sync_without_a_body_uses_a_default_reason(api: Api) -> None:
    assert api.call("POST", "/sync").status == 202
    assert api.starter.events[0]["reason"] == "requested through the API"


def test_post_sync_while_a_run_is_live_names_the_next_run_instead_of_refusing(api: Api) -> None:
    # given a live run
    api.store.lock = ("20261122T090000Z-busy0001", NOW + timedelta(minutes=5))
    # when a person asks for a sync
    answer = api.call("POST", "/sync")
    # then the request is queued for the next run, not refused
    assert answer.status == 202
    assert answer.body["runId"] == "20261122T091500Z-0000abcd"
    assert answer.body["status"] == "queued"
    assert [event["run_id"] for event in api.starter.events] == ["20261122T091500Z-0000abcd"]
    # and the reason given is kept with the promise, for whichever message starts that run
    assert api.claims.next_reason == "requested through the API"


def test_a_burst_of_requests_is_coalesced_into_one_next_run_and_one_message(api: Api) -> None:
    api.store.lock = ("20261122T090000Z-busy0001", NOW + timedelta(minutes=5))
    answers = [api.call("POST", "/sync") for _ in range(50)]
    # every request is accepted and names the same next run; one message carries them all
    assert {(a.status, a.body["runId"]) for a in answers} == {(202, "20261122T091500Z-0000abcd")}
    assert len(api.starter.events) == 1


def test_post_sync_after_the_lease_expired_starts_a_run(api: Api) -> None:
    api.store.lock = ("20261122T080000Z-dead0001", NOW - timedelta(seconds=1))
    assert api.call("POST", "/sync").status == 202


def test_post_sync_after_the_next_run_started_names_a_new_one(api: Api) -> None:
    first = api.call("POST", "/sync").body["runId"]
    # when the sync starts that run, it drops the claim
    api.claims.clear_next(first)
    api.store.lock = (first, NOW + timedelta(minutes=5))
    # then a new request names a new next run (here the same clock, so compare the messages)
    assert api.call("POST", "/sync").status == 202
    assert len(api.starter.events) == 2


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ("{not json", "body"),
        ("[1, 2]", "body"),
        ('"text"', "body"),
        ('{"reason": 5}', "reason"),
        ('{"reason": "' + "x" * 501 + '"}', "reason"),
        ('{"reason": "a", "force": true}', "force"),
    ],
)
def test_post_sync_with_a_bad_body_is_400(api: Api, body: str, parameter: str) -> None:
    answer = api.call("POST", "/sync", body=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.body["parameter"] == parameter
    assert api.starter.events == []


@pytest.mark.parametrize("raw", [b"t\xef\xbf\xbd\xff\xfeM/", b"\x80"])
def test_post_sync_with_a_body_that_is_not_utf8_is_400_not_500(api: Api, raw: bytes) -> None:
    # given a JSON-typed body that is not UTF-8, which API Gateway passes on base64-encoded
    event = api.event(
        "POST",
        "/sync",
        body=base64.b64encode(raw).decode(),
        headers={"Content-Type": "application/json"},
    )
    event["isBase64Encoded"] = True
    # when the function gets it
    answer = api.send(event)
    # then it names the body instead of failing with 500
    assert answer.status == 400
    assert answer.body["parameter"] == "body"
    assert api.starter.events == []


def test_post_sync_when_sqs_refuses_the_message_is_503_and_frees_the_claim(api: Api) -> None:
    api.starter.failure = QueueError("send_message on q: ClientError: RequestThrottled")
    answer = api.call("POST", "/sync")
    assert answer.status == 503
    assert "RequestThrottled" not in json.dumps(answer.body)
    # then the next request is not told to wait for a run nothing will start
    assert api.claims.next_run(NOW) is None


# ----- routing errors and internal errors -----


@pytest.mark.parametrize("path", ["/nope", "/vulnerabilities/a/b", "/sync/runs/a/b"])
def test_unknown_route_is_404(api: Api, path: str) -> None:
    answer = api.call("GET", path)
    assert answer.status == 404
    assert answer.body == {"message": f"no route GET {path}"}


def test_a_trailing_slash_serves_the_same_route(api: Api) -> None:
    assert api.call("GET", "/sync/runs/").body == api.call("GET", "/sync/runs").body
    assert api.call("POST", "/stats/").status == 405


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/stats", "GET"),
        ("POST", "/vulnerabilities/v1", "GET"),
        ("GET", "/sync", "POST"),
        ("PUT", "/sync/runs/r1", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(api: Api, method: str, path: str, allow: str) -> None:
    answer = api.call(method, path)
    assert answer.status == 405
    assert answer.headers["allow"] == allow
    assert answer.body["allow"] == [allow]


def test_an_unexpected_error_is_500_with_the_request_id_and_no_internals(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api.store.failure = RuntimeError("secret table layout detail")
    answer = api.call("GET", "/sync/runs")
    assert answer.status == 500
    assert answer.body == {
        "message": "internal error",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    }
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert logged
    assert logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", None) == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


@pytest.mark.parametrize("path", ["/stats", "/vulnerabilities/v1", "/sync/runs/r1"])
def test_routes_without_parameters_refuse_a_query_parameter(api: Api, path: str) -> None:
    _with_snapshot(api)
    answer = api.call("GET", path, query={"x": "1"})
    assert answer.status == 400
    assert answer.body["parameter"] == "x"


# ----- no input is a 500 -----

_names = st.sampled_from(sorted(FINDING_PARAMETERS | {"days", "x", "Limit"}))
_values = st.text(max_size=40) | st.sampled_from(["0", "1", "500", "true", "HIGH", "-1", "²"])


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.dictionaries(_names, _values, max_size=5))
def test_no_query_string_makes_the_listing_fail(api: Api, query: dict[str, str]) -> None:
    if not api.store.findings:
        _findings(api)
    answer = api.call("GET", "/vulnerabilities", query=query)
    assert answer.status in (200, 400), (query, answer.body)
    if answer.status == 400:
        assert answer.body["parameter"] in query


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cursor=st.text(min_size=1, max_size=80)
    | st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
)
def test_no_cursor_makes_the_listing_fail(api: Api, cursor: str) -> None:
    answer = api.call("GET", "/vulnerabilities", query={"cursor": cursor})
    assert answer.status in (200, 400)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.text(max_size=60)
    | st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["reason", "x"]), inner, max_size=2)
            ),
            max_leaves=6,
        ),
    )
)
def test_no_body_makes_post_sync_fail(api: Api, body: str) -> None:
    answer = api.call("POST", "/sync", body=body)
    assert answer.status in (202, 400), (body, answer.body)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.lists(
        st.sampled_from(["stats", "history", "sync", "runs", "vulnerabilities", "x", ""]),
        max_size=4,
    ).map(lambda parts: "/" + "/".join(parts)),
)
def test_no_method_and_path_is_a_500(api: Api, method: str, path: str) -> None:
    answer = api.call(method, path)
    assert answer.status < 500 or answer.status == 503, (method, path, answer.body)
