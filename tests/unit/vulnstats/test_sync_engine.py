"""The sync engine's invariants with in-memory ports: exact, resumable, never writing twice."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fakes.stores import MemoryArchive, MemoryRuns, MemorySnapshots, MemoryState
from fakes.upstream import FakeUpstream

from lambdakit.metrics import InMemoryMetricSink
from localstage.vanta_data import Dataset, Revision
from vulnstats.errors import DeadlineExceededError, RetriesExhaustedError
from vulnstats.ports import Phase, RunStatus
from vulnstats.sync import SyncConfig, SyncEngine, Upstream

if TYPE_CHECKING:
    from vulnstats.models import Entity

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def _records(dataset: Dataset) -> dict[Entity, list[Any]]:
    return {
        "assets": list(dataset.iter_assets()),
        "vulnerabilities": list(dataset.iter_vulnerabilities()),
        "remediations": list(dataset.iter_remediations()),
    }


DATA = Dataset(seed=11, vulnerability_count=57, asset_count=9, remediation_count=23, now=NOW)


class World:
    """One deployment's stores, shared by the invocations a test makes."""

    def __init__(self) -> None:
        self.state = MemoryState()
        self.runs = MemoryRuns()
        self.snapshots = MemorySnapshots()
        self.archive = MemoryArchive()
        self.continuations: list[tuple[str, int]] = []
        self.now = NOW
        self.metrics = InMemoryMetricSink()

    def engine(
        self,
        upstream: Upstream,
        *,
        remaining: float = 800.0,
        pages_per_invocation: int | None = None,
    ) -> SyncEngine:
        """One invocation's engine; pages_per_invocation: run out of time after so many pages."""

        def remaining_seconds() -> float:
            if pages_per_invocation is None:
                return remaining
            done = upstream.stats.pages - start_pages
            return 1000.0 if done < pages_per_invocation else 10.0

        start_pages = upstream.stats.pages
        return SyncEngine(
            client=upstream,
            state=self.state,
            runs=self.runs,
            snapshots=self.snapshots,
            archive=self.archive,
            start_continuation=lambda run_id, seq: self.continuations.append((run_id, seq)),
            remaining_seconds=remaining_seconds,
            clock=lambda: self.now,
            config=SyncConfig(time_margin_seconds=60.0),
            metrics=self.metrics,
        )


def _expected_state(dataset: Dataset) -> dict[str, set[str]]:
    records = _records(dataset)
    return {entity: {r["id"] for r in rows} for entity, rows in records.items()}


def _state_ids(world: World) -> dict[str, set[str]]:
    return {e: world.state.ids(e) for e in ("assets", "vulnerabilities", "remediations")}


def test_first_run_stores_exactly_the_upstream_set_and_a_snapshot() -> None:
    # given an empty deployment / when a scheduled run goes through in one invocation
    world = World()
    outcome = world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    # then
    assert outcome.status == "succeeded"
    assert _state_ids(world) == _expected_state(DATA)
    assert max(world.state.writes.values()) == 1
    run = world.runs.runs[outcome.run_id or ""]
    assert run.status is RunStatus.SUCCEEDED
    assert run.checkpoint.phase is Phase.DONE
    assert world.snapshots.latest is not None
    assert world.runs.lock is None
    assert world.metrics.total("SyncSuccess") == 1


def test_unchanged_rerun_writes_nothing() -> None:
    world = World()
    world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    first_writes = sum(world.state.writes.values())
    # when the same upstream is synced again
    world.now += timedelta(hours=1)
    outcome = world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    # then no state item was written again
    assert outcome.status == "succeeded"
    assert sum(world.state.writes.values()) == first_writes
    assert outcome.counts.written == 0
    assert outcome.counts.unchanged == outcome.counts.fetched


def test_changed_and_vanished_records_are_written_and_deleted() -> None:
    world = World()
    world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    revised = DATA.with_revision(Revision(number=2, change_fraction=0.1, removed_count=4))
    changed = set(revised.changed_vulnerability_ids())
    removed = set(revised.removed_vulnerability_ids())
    # when
    world.now += timedelta(hours=1)
    outcome = world.engine(FakeUpstream(_records(revised))).start("scheduled")
    # then exactly the changed findings are rewritten and the vanished ones deleted
    assert _state_ids(world)["vulnerabilities"] == _expected_state(revised)["vulnerabilities"]
    rewritten = {i for (e, i), n in world.state.writes.items() if e == "vulnerabilities" and n == 2}
    assert rewritten == changed - removed
    assert outcome.counts.deleted == len(removed)


@pytest.mark.parametrize(
    ("entity", "page"),
    [("assets", 1), ("vulnerabilities", 1), ("vulnerabilities", 3), ("remediations", 2)],
)
def test_failure_at_any_page_then_rerun_converges_without_double_writes(
    entity: Entity, page: int
) -> None:
    # given an upstream that gives up at one page
    world = World()
    broken = FakeUpstream(_records(DATA))
    broken.faults[(entity, page)] = RetriesExhaustedError("attempts", 5, RuntimeError("503"))
    failed = world.engine(broken).start("scheduled")
    # then the run is recorded failed with its checkpoint, and the lock is free
    assert failed.status == "failed"
    assert world.runs.runs[failed.run_id or ""].status is RunStatus.FAILED
    assert world.runs.lock is None
    # when the next scheduled start comes
    world.now += timedelta(minutes=5)
    resumed = world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    # then it resumed the same run and the state is exact, each record written once
    assert resumed.status == "succeeded"
    assert resumed.run_id == failed.run_id
    assert _state_ids(world) == _expected_state(DATA)
    assert max(world.state.writes.values()) == 1


def test_run_continues_in_new_invocations_when_time_runs_short() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    outcome = world.engine(upstream, pages_per_invocation=3).start("scheduled")
    invocations = 1
    while outcome.status == "continuing":
        run_id, sequence = world.continuations[-1]
        outcome = world.engine(upstream, pages_per_invocation=3).resume(run_id, sequence)
        invocations += 1
    assert outcome.status == "succeeded"
    assert invocations > 3
    assert _state_ids(world) == _expected_state(DATA)
    assert max(world.state.writes.values()) == 1
    assert world.runs.runs[outcome.run_id or ""].continuations == invocations - 1


def test_upstream_deadline_hands_over_instead_of_failing() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA))
    upstream.faults[("vulnerabilities", 2)] = DeadlineExceededError(3.0, 5.0)
    outcome = world.engine(upstream).start("scheduled")
    assert outcome.status == "continuing"
    run_id, sequence = world.continuations[-1]
    finished = world.engine(upstream).resume(run_id, sequence)
    assert finished.status == "succeeded"
    assert _state_ids(world) == _expected_state(DATA)


def test_second_start_is_refused_while_a_run_holds_the_lock() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    first = world.engine(upstream, pages_per_invocation=2).start("scheduled")
    assert first.status == "continuing"
    # when a manual start arrives before the continuation has finished
    second = world.engine(FakeUpstream(_records(DATA))).start("manual", "impatient")
    # then it is refused and names the run in progress
    assert second.status == "refused"
    assert second.run_id == first.run_id
    assert len(world.runs.runs) == 1


def test_a_replayed_or_stale_continuation_does_nothing() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    first = world.engine(upstream, pages_per_invocation=2).start("scheduled")
    run_id, sequence = world.continuations[-1]
    world.engine(upstream).resume(run_id, sequence)
    writes = copy.copy(world.state.writes)
    # when the same continuation is delivered again
    again = world.engine(FakeUpstream(_records(DATA))).resume(run_id, sequence)
    # then
    assert first.status == "continuing"
    assert again.status == "stale"
    assert world.state.writes == writes


def test_run_abandoned_by_a_dead_worker_is_taken_over_after_its_lease() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    dead = world.engine(upstream, pages_per_invocation=2).start("scheduled")
    world.continuations.clear()  # the continuation never ran: the worker died
    # when a start comes after the lease expired
    world.now += timedelta(seconds=SyncConfig().lock_lease_seconds + 1)
    taken = world.engine(FakeUpstream(_records(DATA), page_size=5)).start("scheduled")
    # then the same run resumes from its checkpoint and finishes exactly
    assert taken.status == "succeeded"
    assert taken.run_id == dead.run_id
    assert _state_ids(world) == _expected_state(DATA)
    assert max(world.state.writes.values()) == 1


def test_malformed_records_are_quarantined_with_reasons_and_the_run_goes_on() -> None:
    records = _records(DATA)
    bad = dict(records["vulnerabilities"][3])
    bad["severity"] = "SEVERE"
    missing = dict(records["vulnerabilities"][4])
    del missing["firstDetectedDate"]
    records["vulnerabilities"][3:5] = [bad, missing]
    world = World()
    outcome = world.engine(FakeUpstream(records)).start("scheduled")
    assert outcome.status == "succeeded"
    assert outcome.counts.quarantined == 2
    (rejects,) = world.archive.quarantine.values()
    reasons = sorted(r["reason"] for r in rejects)
    assert reasons == ["firstDetectedDate: missing", "severity: unknown value 'SEVERE'"]
    # a malformed record still exists upstream: it is not deleted as vanished on a later run
    assert bad["id"] not in world.state.ids("vulnerabilities")


def test_remediations_are_listed_from_the_last_complete_run_with_overlap() -> None:
    world = World()
    world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    first_start = world.now
    world.now += timedelta(hours=3)
    upstream = FakeUpstream(_records(DATA))
    world.engine(upstream).start("scheduled")
    assert upstream.remediated_after_seen == [first_start - timedelta(hours=24)]


def test_a_quarantined_remediation_is_listed_again_until_it_is_fixed_upstream() -> None:
    # given a first run (a full listing) that quarantined one remediation
    records = _records(DATA)
    broken = copy.deepcopy(records)
    broken["remediations"][5]["severity"] = "SEVERE"
    world = World()
    world.engine(FakeUpstream(broken)).start("scheduled")
    assert records["remediations"][5]["id"] not in world.state.ids("remediations")
    # when later runs come while it stays malformed, then each lists everything again
    for hours in (3, 6):
        world.now = NOW + timedelta(hours=hours)
        still_broken = FakeUpstream(broken)
        world.engine(still_broken).start("scheduled")
        assert still_broken.remediated_after_seen == [datetime(1970, 1, 1, tzinfo=UTC)]
    # when it is fixed upstream, then the next run stores it
    world.now = NOW + timedelta(hours=9)
    fixed_start = world.now
    world.engine(FakeUpstream(records)).start("scheduled")
    assert world.state.ids("remediations") == {r["id"] for r in records["remediations"]}
    # and the run after that is incremental again
    world.now = NOW + timedelta(hours=12)
    after = FakeUpstream(records)
    world.engine(after).start("scheduled")
    assert after.remediated_after_seen == [fixed_start - timedelta(hours=24)]


def test_an_incremental_run_that_quarantines_keeps_its_own_window_for_the_next() -> None:
    # given a complete run, then an incremental one that quarantined a remediation
    records = _records(DATA)
    world = World()
    world.engine(FakeUpstream(records)).start("scheduled")
    broken = copy.deepcopy(records)
    broken["remediations"][2]["severity"] = "SEVERE"
    world.now = NOW + timedelta(days=2)
    world.engine(FakeUpstream(broken)).start("scheduled")
    # when the next run comes days later, then it lists from the quarantining run's window
    world.now = NOW + timedelta(days=5)
    upstream = FakeUpstream(records)
    world.engine(upstream).start("scheduled")
    assert upstream.remediated_after_seen == [NOW - timedelta(hours=24)]


def test_engine_accepts_the_real_vanta_client() -> None:
    # a type-level check made real: mypy verifies VantaClient satisfies Upstream here
    from vulnstats.vanta import StaticCredentials, VantaClient

    client: Upstream = VantaClient(StaticCredentials("vci_x", "vcs_y"))
    assert client.stats.pages == 0


def test_late_continuation_of_a_taken_over_run_is_stale() -> None:
    # given a run whose worker died after sending its continuation
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    world.engine(upstream, pages_per_invocation=2).start("scheduled")
    run_id, old_sequence = world.continuations[-1]
    world.now += timedelta(seconds=SyncConfig().lock_lease_seconds + 1)
    taken = world.engine(FakeUpstream(_records(DATA), page_size=5), pages_per_invocation=2)
    assert taken.start("scheduled").status == "continuing"
    # when the old worker's continuation finally arrives
    late = world.engine(FakeUpstream(_records(DATA))).resume(run_id, old_sequence)
    # then it does nothing: only the new worker's continuation carries the run on
    assert late.status == "stale"


def test_retries_are_recorded_on_the_run_and_emitted_as_a_metric() -> None:
    # given an upstream where every page needed one retry
    world = World()
    upstream = FakeUpstream(_records(DATA), retries_per_page=1)
    # when a run goes through
    outcome = world.engine(upstream).start("scheduled")
    # then the run record, the outcome and the metric all count one retry per page
    run = world.runs.runs[outcome.run_id or ""]
    assert run.counts.pages > 0
    assert run.counts.retries == run.counts.pages
    assert outcome.counts.retries == run.counts.pages
    assert world.metrics.total("SyncRetries") == run.counts.pages


def test_a_run_finishes_when_its_snapshot_is_stored_not_when_finalize_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a deployment where storing the snapshot takes five seconds
    world = World()
    store = world.snapshots.put_snapshot

    def slow_put(*args: Any, **kwargs: Any) -> None:
        store(*args, **kwargs)
        world.now += timedelta(seconds=5)

    monkeypatch.setattr(world.snapshots, "put_snapshot", slow_put)
    # when a run goes through
    outcome = world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    # then the snapshot keeps its computation time, and the run (and /health's last
    # successful sync) ends after it: both snapshots, with and without deactivated findings
    run = world.runs.runs[outcome.run_id or ""]
    assert world.snapshots.latest is not None
    assert world.snapshots.latest["computedAt"] == "2025-01-01T12:00:00.000Z"
    assert world.snapshots.latest_with_deactivated is not None
    assert world.snapshots.latest_with_deactivated["includesDeactivated"] is True
    assert run.finished_at == NOW + timedelta(seconds=5)
    assert world.runs.last is not None
    assert world.runs.last.finished_at == NOW + timedelta(seconds=5)


def test_the_lease_ends_at_the_invocations_deadline_plus_the_margin() -> None:
    # given an invocation that runs out of time after one page, with 10 s left
    world = World()
    engine = world.engine(FakeUpstream(_records(DATA), page_size=5), pages_per_invocation=1)
    # when it hands the run over
    engine.start("scheduled")
    # then the lock lasts to its deadline plus the margin, not a fixed 960 s: a redelivered
    # message of a worker that died here takes the run over soon after the deadline
    assert world.runs.lock is not None
    margin = SyncConfig().lease_margin_seconds
    assert world.runs.lock.lease_until == NOW + timedelta(seconds=10 + margin)


def test_a_request_naming_a_live_or_finished_run_is_coalesced_into_it() -> None:
    world = World()
    upstream = FakeUpstream(_records(DATA), page_size=5)
    live = world.engine(upstream, pages_per_invocation=1).start("manual", "first", "run-a")
    # when another delivery of the same request arrives while run-a holds the lock
    again = world.engine(FakeUpstream(_records(DATA))).start("manual", "first", "run-a")
    assert (live.status, again.status, again.run_id) == ("continuing", "coalesced", "run-a")
    # and once run-a finished, a late delivery does not start it again
    world.runs.put_run(replace(world.runs.runs["run-a"], status=RunStatus.SUCCEEDED))
    world.runs.release_lock("run-a")
    late = world.engine(FakeUpstream(_records(DATA))).start("manual", "first", "run-a")
    assert late.status == "coalesced"


def test_a_refused_request_says_when_the_live_run_lease_ends() -> None:
    world = World()
    world.engine(FakeUpstream(_records(DATA), page_size=5), pages_per_invocation=1).start(
        "scheduled"
    )
    refused = world.engine(FakeUpstream(_records(DATA))).start("manual", "later", "run-b")
    assert refused.status == "refused"
    assert refused.retry_after == 10 + SyncConfig().lease_margin_seconds


def test_a_scheduled_start_carries_the_promised_next_run_and_drops_the_claim() -> None:
    world = World()
    world.runs.claim_next("run-next", NOW, 3600)
    outcome = world.engine(FakeUpstream(_records(DATA))).start("scheduled")
    assert outcome.run_id == "run-next"
    assert world.runs.next_run(NOW) is None
