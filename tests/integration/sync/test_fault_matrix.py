"""Fault matrix: every fault kind at every stage of a run, then a re-run that must converge.

Each case injects one fault (on the Vanta stand-in, or on DynamoDB/S3 through a loopback proxy
in front of moto: the real adapters, only their endpoint changes, as AWS_ENDPOINT_URL_* does),
runs the real engine, checks that the failure is visible (run record status and reason, the
SyncFailure / SyncSuccess / SyncRetries metrics, or the error a handler would raise into the
DLQ), then clears the fault and checks that the next start converges to the stand-in's data set
(the independent oracle of tests/support/sync_world.py) with no record written twice.

Covered elsewhere, not repeated here:
- 503 on findings pages 1, 2, 5, assets page 1, remediations page 2 (fail, resume):
  test_sync_runs.py::test_failure_at_page_k_then_rerun_converges_without_writing_twice
- 429 storms ridden out (with and without Retry-After), a storm longer than the deadline:
  test_sync_runs.py::test_429_storm_is_ridden_out_within_the_deadline,
  ::test_storm_longer_than_the_deadline_hands_over_with_its_checkpoint
- one 401 revocation mid-run:
  test_sync_runs.py::test_token_revoked_mid_run_mints_exactly_one_new_token
- duplicate records across pages:
  test_sync_runs.py::test_pages_that_repeat_records_write_each_record_once
- malformed records quarantined: test_sync_runs.py::test_malformed_records_are_quarantined_...
- worker dead after writing half a page, takeover after the lease:
  test_sync_runs.py::test_crash_in_the_middle_of_a_page_is_taken_over_after_the_lease_...
- records vanished between two runs: test_sync_runs.py::test_rerun_after_upstream_changes_...
- a failed async invocation reaches the DLQ with its reason (the local runtime):
  tests/integration/localstage/test_local_runtime.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import pytest
from fault_proxy import FaultProxy, ProxyFault, running_proxy
from sync_world import (
    DATA,
    ENDPOINT,
    LEASE,
    NOW,
    PAGE_SIZE,
    REGION,
    World,
    assert_snapshot_is_exact,
    assert_state_equals_upstream,
    plan,
)

from lambdakit.metrics import InMemoryMetricSink
from localstage.aws import MotoServer, local_client
from localstage.vanta_standin import FaultRule
from vulnstats.archive import S3Archive
from vulnstats.dynamo import DynamoStore
from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-faults")]

VULN_PAGES = math.ceil(sum(1 for _ in DATA.iter_vulnerability_ids()) / PAGE_SIZE)
REM_PAGES = math.ceil(DATA.count_remediations() / PAGE_SIZE)
MIDDLE = VULN_PAGES // 2
V = ENDPOINT["vulnerabilities"]
R = ENDPOINT["remediations"]
A = ENDPOINT["assets"]
# Raw pages are stored in this order, one PutObject each: the n-th put is a known page.
ASSET_PAGES = math.ceil(DATA.count_assets() / PAGE_SIZE)

Outcome = Literal["succeeded", "failed", "crashed"]


@dataclass(frozen=True)
class Case:
    """One fault, where it hits, and what the first run must show."""

    upstream: tuple[FaultRule, ...] = ()
    storage: tuple[ProxyFault, ...] = ()
    expect: Outcome = "succeeded"
    stopped_at: tuple[str, int] | None = None  # checkpoint phase and page of a stopped run
    reason: str = ""  # in the run record's error (failed) or the raised error (crashed)
    read_timeout: float | None = None
    retried: bool = True  # the first run needed retries (SyncRetries > 0)
    # the first N assets were quarantined: their findings change (asset type now known)
    quarantined_assets: int = 0


def _latency(endpoint: str, at: int, times: int | None) -> FaultRule:
    return FaultRule("latency", endpoint=endpoint, at=at, times=times, seconds=0.4)


CASES: dict[str, Case] = {
    # ---- token endpoint
    "token-down-briefly": Case(upstream=(FaultRule("token_down", times=2),)),
    "token-down": Case(
        upstream=(FaultRule("token_down", times=None),),
        expect="failed",
        stopped_at=("assets", 1),
        reason="circuit",
    ),
    "token-down-after-revocation": Case(
        upstream=(FaultRule("revoke_token", after=5), FaultRule("token_down", at=2, times=None)),
        expect="failed",
        stopped_at=("vulnerabilities", 5),
        reason="401",
    ),
    # ---- 5xx: transient on first / middle / last pages, persistent on the last pages
    "5xx-assets-first-briefly": Case(upstream=(FaultRule("status", endpoint=A, times=2),)),
    "5xx-vulns-last-briefly": Case(
        upstream=(FaultRule("status", endpoint=V, at=VULN_PAGES, times=2, status=502),)
    ),
    "5xx-rems-last-briefly": Case(
        upstream=(FaultRule("status", endpoint=R, at=REM_PAGES, times=2, status=500),)
    ),
    "5xx-vulns-last": Case(
        upstream=(FaultRule("status", endpoint=V, at=VULN_PAGES, times=None, status=502),),
        expect="failed",
        stopped_at=("vulnerabilities", VULN_PAGES),
        reason="circuit",
    ),
    "5xx-rems-last": Case(
        upstream=(FaultRule("status", endpoint=R, at=REM_PAGES, times=None, status=500),),
        expect="failed",
        stopped_at=("remediations", REM_PAGES),
        reason="circuit",
    ),
    # ---- timeouts (the stand-in answers later than the client's read timeout)
    "timeout-vulns-middle-briefly": Case(upstream=(_latency(V, MIDDLE, 2),), read_timeout=0.15),
    "timeout-rems-first-briefly": Case(upstream=(_latency(R, 1, 1),), read_timeout=0.15),
    "timeout-vulns-last": Case(
        upstream=(_latency(V, VULN_PAGES, None),),
        read_timeout=0.15,
        expect="failed",
        stopped_at=("vulnerabilities", VULN_PAGES),
        reason="circuit",
    ),
    # ---- 401: a token that stays refused fails fast after one new token
    "401-vulns-middle": Case(
        upstream=(FaultRule("status", endpoint=V, at=MIDDLE, times=None, status=401),),
        expect="failed",
        stopped_at=("vulnerabilities", MIDDLE),
        reason="401",
    ),
    # ---- malformed and truncated bodies
    "invalid-json-vulns-middle-briefly": Case(
        upstream=(FaultRule("truncated", endpoint=V, at=MIDDLE, times=1),)
    ),
    "short-read-rems-last-briefly": Case(
        upstream=(FaultRule("truncated", endpoint=R, at=REM_PAGES, times=1, mode="short_read"),)
    ),
    "invalid-json-vulns-first": Case(
        upstream=(FaultRule("truncated", endpoint=V, at=1, times=None),),
        expect="failed",
        stopped_at=("vulnerabilities", 1),
        reason="circuit",
    ),
    "malformed-page-rems-last": Case(
        upstream=(FaultRule("malformed", endpoint=R, at=REM_PAGES, count=PAGE_SIZE),),
        retried=False,
    ),
    "malformed-page-assets": Case(
        upstream=(FaultRule("malformed", endpoint=A, at=1, count=3, variant="wrong_type"),),
        retried=False,
        quarantined_assets=3,
    ),
    # ---- duplicates and vanished records
    "duplicates-vulns-last-boundary": Case(
        upstream=(FaultRule("duplicates", endpoint=V, at=VULN_PAGES - 1, count=5),),
        retried=False,
    ),
    "vanished-vulns-middle": Case(
        upstream=(FaultRule("vanish", endpoint=V, at=MIDDLE, count=3),), retried=False
    ),
    # ---- DynamoDB throttling (botocore and the store's own retries absorb short bursts)
    "ddb-throttle-batchwrite-briefly": Case(
        storage=(ProxyFault("dynamodb", "BatchWriteItem", at=3, times=2),), retried=False
    ),
    "ddb-throttling-batchget-briefly": Case(
        storage=(ProxyFault("dynamodb", "BatchGetItem", code="ThrottlingException"),),
        retried=False,
    ),
    "ddb-throttle-checkpoint-briefly": Case(
        storage=(ProxyFault("dynamodb", "PutItem", at=4),), retried=False
    ),
    "ddb-unprocessed-items": Case(
        storage=(ProxyFault("dynamodb", "BatchWriteItem", kind="unprocessed", times=None),),
        retried=False,
    ),
    "ddb-throttle-batchwrite": Case(
        storage=(ProxyFault("dynamodb", "BatchWriteItem", at=ASSET_PAGES + 3, times=None),),
        expect="crashed",
        stopped_at=("vulnerabilities", 3),
        reason="ProvisionedThroughputExceeded",
    ),
    "ddb-throttle-finalize-query": Case(
        storage=(ProxyFault("dynamodb", "Query", at=3, times=None),),
        expect="crashed",
        stopped_at=("finalize", 1),
        reason="ProvisionedThroughputExceeded",
    ),
    # ---- worker killed mid-page: the write reached the table, the answer never came back
    "ddb-answer-lost-mid-page": Case(
        storage=(ProxyFault("dynamodb", "BatchWriteItem", kind="drop", at=ASSET_PAGES + 2),),
        retried=False,
    ),
    "ddb-worker-dies-after-write": Case(
        storage=(
            ProxyFault("dynamodb", "BatchWriteItem", kind="drop", at=ASSET_PAGES + 2, times=None),
        ),
        expect="crashed",
        stopped_at=("vulnerabilities", 2),
        reason="BatchWriteItem",
    ),
    # ---- S3 write failure
    "s3-slowdown-briefly": Case(storage=(ProxyFault("s3", "PutObject", at=5),), retried=False),
    "s3-put-fails-vulns-middle": Case(
        storage=(ProxyFault("s3", "PutObject", kind="error", at=ASSET_PAGES + MIDDLE, times=None),),
        expect="crashed",
        stopped_at=("vulnerabilities", MIDDLE),
        reason="PutObject",
    ),
    "s3-read-fails-in-finalize": Case(
        storage=(ProxyFault("s3", "GetObject", kind="error", times=None),),
        expect="crashed",
        stopped_at=("finalize", 1),
        reason="GetObject",
    ),
}


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    yield from running_proxy(moto.endpoint_url)


def _store(world: World, proxy: FaultProxy) -> DynamoStore:
    client = local_client("dynamodb", proxy.endpoint_url, REGION)
    return DynamoStore(world.table, client=client, sleep=world.sleep, track_ids=True)


def _archive(world: World, proxy: FaultProxy) -> S3Archive:
    return S3Archive(world.bucket, client=local_client("s3", proxy.endpoint_url, REGION))


def _run_record(world: World) -> dict[str, object]:
    [run] = world.runs()
    return run


def _vanished(case: Case) -> set[str]:
    """Findings the faulty run cannot have seen (left out of a page by a vanish rule)."""
    ids = list(DATA.iter_vulnerability_ids())
    gone: set[str] = set()
    for rule in case.upstream:
        if rule.kind == "vanish" and rule.endpoint == V:
            start = (rule.at - 1) * PAGE_SIZE
            gone.update(ids[start : start + rule.count])
    return gone


@pytest.mark.parametrize("name", list(CASES))
def test_fault_is_visible_and_the_next_run_converges_without_double_writes(  # noqa: PLR0915
    world: World, proxy: FaultProxy, name: str
) -> None:
    case = CASES[name]
    store, archive = _store(world, proxy), _archive(world, proxy)
    client_options: dict[str, Any] = (
        {} if case.read_timeout is None else {"read_timeout": case.read_timeout}
    )
    # given the fault
    world.standin.set_faults(plan(*case.upstream))
    proxy.set_faults(*case.storage)
    metrics = InMemoryMetricSink()
    # when a run starts
    engine = world.engine(
        client=world.client(**client_options), store=store, archive=archive, metrics=metrics
    )
    if case.expect == "crashed":
        with pytest.raises(StorageError, match=case.reason):
            engine.start("scheduled")
        first_run_id = str(_run_record(world)["sk"]["S"])  # type: ignore[index]
    else:
        outcome = engine.start("scheduled")
        first_run_id = str(outcome.run_id)
        assert outcome.status == case.expect, outcome.message
    # then the failure (or what was absorbed) is visible
    fired = sum(world.standin.stats()["stats"]["faults_fired"].values()) + sum(proxy.fired.values())
    assert fired >= 1, "the fault never fired"
    run = _run_record(world)
    status = run["status"]["S"]  # type: ignore[index]
    if case.expect == "succeeded":
        assert status == "succeeded"
        assert metrics.total("SyncSuccess") == 1
        assert (metrics.total("SyncRetries") > 0) is case.retried
    elif case.expect == "failed":
        assert status == "failed"
        assert case.reason.lower() in str(run["error"]["S"]).lower()  # type: ignore[index]
        assert metrics.total("SyncFailure") == 1
    else:
        # raised out of the handler (so an async invoke lands in the DLQ); the record waits
        assert status == "running"
        assert metrics.total("SyncSuccess") == metrics.total("SyncFailure") == 0
    if case.stopped_at is not None:
        checkpoint = run["checkpoint"]["M"]  # type: ignore[index]
        phase, page = case.stopped_at
        assert checkpoint["phase"]["S"] == phase
        if phase != "finalize":
            assert checkpoint["page_number"]["N"] == str(page)
    vanished = _vanished(case)
    assert set(world.items("vulnerabilities")).isdisjoint(vanished)
    # when the fault is over and the next start comes (after the lease, if a worker died)
    world.standin.set_faults(plan())
    proxy.set_faults()
    if case.expect == "crashed":
        world.now = NOW + timedelta(seconds=LEASE + 1)
    rerun_store = _store(world, proxy)
    final = world.follow(
        world.engine(store=rerun_store, archive=_archive(world, proxy)).start("scheduled")
    )
    # then it succeeds with exactly the upstream state and an exact snapshot
    assert final.status == "succeeded", final.message
    if case.expect != "succeeded":
        assert final.run_id == first_run_id, "the stopped run was not resumed"
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)
    # and no record was written twice over both runs
    assert store.writes is not None
    assert rerun_store.writes is not None
    writes = store.writes + rerun_store.writes
    assets = [rec["id"] for rec in DATA.iter_assets()][: case.quarantined_assets]
    changed = {
        ("vulnerabilities", rec["id"])
        for rec in DATA.iter_vulnerabilities()
        if rec["targetId"] in assets
    }
    twice = sorted(key for key, times in writes.items() if times > 1 and key not in changed)
    assert twice == [], twice[:5]
