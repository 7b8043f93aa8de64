"""Sync runs end to end in-process: real engine, DynamoStore and S3Archive on moto, the real
Vanta client against the stand-in, compared with the stand-in's data set as the oracle."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sync_world import (
    DATA,
    ENDPOINT,
    ENTITIES,
    LEASE,
    NOW,
    PAGE_SIZE,
    CrashingStore,
    World,
    assert_snapshot_is_exact,
    assert_state_equals_upstream,
    distinct_records,
    plan,
    upstream,
)

from lambdakit.retry import Deadline
from localstage.vanta_data import Revision
from localstage.vanta_standin import FaultRule
from vulnstats.errors import StorageError

if TYPE_CHECKING:
    from vulnstats.models import Entity

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-runs")]


# ----------------------------------------------------------------------------- tests


def test_first_run_stores_exactly_the_upstream_set_and_an_exact_snapshot(world: World) -> None:
    # given an empty table and the stand-in serving the generated set
    # when a run starts
    outcome = world.engine().start("scheduled")
    # then it succeeds, the stored state is the upstream set, the snapshot is exact
    assert outcome.status == "succeeded", outcome.message
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)
    # and every record was written once, every page archived
    assert world.written() == distinct_records()
    assert outcome.run_counts.fetched == sum(distinct_records().values())
    assert outcome.run_counts.written == sum(distinct_records().values())
    assert len(world.keys("raw/")) == world.clients[0].stats.pages


def test_unchanged_rerun_writes_no_state_item(world: World) -> None:
    # given a completed first run
    assert world.engine().start("scheduled").status == "succeeded"
    first = world.written()
    # when the upstream is unchanged and a second run starts
    outcome = world.engine().start("scheduled")
    # then it succeeds without writing a single state item and the state is unchanged
    assert outcome.status == "succeeded", outcome.message
    assert world.written() == first
    assert outcome.counts.written == 0
    assert outcome.counts.deleted == 0
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)


def test_rerun_after_upstream_changes_writes_the_changes_and_deletes_what_vanished(
    world: World,
) -> None:
    # given a completed first run
    assert world.engine().start("scheduled").status == "succeeded"
    before = world.written()
    # when the upstream changes some findings, drops some, adds findings and remediations
    revised = DATA.with_revision(
        Revision(
            number=2, change_fraction=0.1, removed_count=6, added_count=9, added_remediations=4
        )
    )
    world.standin.set_dataset(revised)
    outcome = world.engine().start("scheduled")
    # then the state is the revised upstream set and the snapshot is exact again
    assert outcome.status == "succeeded", outcome.message
    assert_state_equals_upstream(world, revised)
    assert_snapshot_is_exact(world, revised)
    # and exactly the records whose content differs were written, the vanished ones deleted
    old, new = upstream(DATA), upstream(revised)
    differing = Counter(
        {
            entity: sum(1 for rid, rec in new[entity].items() if old[entity].get(rid) != rec)
            for entity in ENTITIES
        }
    )
    assert +differing == Counter(
        {
            "vulnerabilities": len(list(revised.changed_vulnerability_ids())) + 9,
            "remediations": 4,
        }
    )
    assert world.written() - before == +differing
    assert dict(world.store.items_deleted) == {"vulnerabilities": 6}
    assert set(world.items("vulnerabilities")).isdisjoint(revised.removed_vulnerability_ids())


def test_pages_that_repeat_records_write_each_record_once(world: World) -> None:
    # given an upstream whose cursors step back, so pages overlap
    world.standin.set_faults(
        plan(
            FaultRule("duplicates", endpoint="vulnerabilities", at=1, times=None, count=3),
            FaultRule("duplicates", endpoint="vulnerability-remediations", at=1, count=2),
        )
    )
    # when a run starts
    outcome = world.engine().start("scheduled")
    # then the state is the upstream set, each record written once although fetched twice
    assert outcome.status == "succeeded", outcome.message
    assert outcome.run_counts.fetched > sum(distinct_records().values())
    assert_state_equals_upstream(world)
    assert world.written() == distinct_records()
    assert outcome.run_counts.deleted == 0


@pytest.mark.parametrize(
    ("entity", "page"),
    [
        ("vulnerabilities", 1),
        ("vulnerabilities", 2),
        ("vulnerabilities", 5),
        ("assets", 1),
        ("remediations", 2),
    ],
)
def test_failure_at_page_k_then_rerun_converges_without_writing_twice(
    world: World, entity: Entity, page: int
) -> None:
    # given an upstream that answers 503 to page k more often than the client retries
    world.standin.set_faults(
        plan(FaultRule("status", endpoint=ENDPOINT[entity], at=page, times=20, status=503))
    )
    # when a run starts
    failed = world.engine().start("scheduled")
    # then it fails cleanly, with a checkpoint at that page
    assert failed.status == "failed", failed.message
    [run] = world.runs()
    assert run["status"]["S"] == "failed"
    checkpoint = run["checkpoint"]["M"]
    assert checkpoint["phase"]["S"] == entity
    assert checkpoint["page_number"]["N"] == str(page)
    # when the upstream recovers and the next run starts
    world.standin.set_faults(plan())
    outcome = world.engine().start("scheduled")
    # then the same run resumes and ends with the upstream state, each record written once
    assert outcome.status == "succeeded", outcome.message
    assert outcome.run_id == failed.run_id
    assert len(world.runs()) == 1
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)
    assert world.written() == distinct_records()


def test_crash_in_the_middle_of_a_page_is_taken_over_after_the_lease_without_double_writes(
    world: World,
) -> None:
    # given a worker that dies after writing half of the third page of findings
    crashing = CrashingStore(world.table, client=world.dynamodb, sleep=world.sleep, crash_on_call=3)
    with pytest.raises(StorageError, match="simulated crash"):
        world.engine(store=crashing).start("scheduled")
    [run] = world.runs()
    assert run["status"]["S"] == "running"
    # when the lease has expired and the next start comes
    world.now = NOW + timedelta(seconds=LEASE + 1)
    outcome = world.engine().start("scheduled")
    # then it takes the run over from its checkpoint: same state, nothing written twice
    assert outcome.status == "succeeded", outcome.message
    assert outcome.run_id == run["sk"]["S"]
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)
    total = world.written() + Counter(crashing.items_written)
    assert total == distinct_records()


def test_start_while_a_dead_workers_lease_is_live_is_refused(world: World) -> None:
    # given a run whose worker died a moment ago (its lease still runs)
    crashing = CrashingStore(world.table, client=world.dynamodb, sleep=world.sleep, crash_on_call=1)
    with pytest.raises(StorageError):
        world.engine(store=crashing).start("scheduled")
    # when another start comes before the lease expires
    outcome = world.engine().start("manual", "impatient")
    # then it is refused and names the run holding the lock
    assert outcome.status == "refused", outcome.message
    [run] = world.runs()
    assert outcome.run_id == run["sk"]["S"]


def test_second_start_while_a_run_continues_is_refused(world: World) -> None:
    # given a run that handed over to a continuation after two pages (it holds the lock)
    first = world.engine(pages_per_invocation=2).start("scheduled")
    assert first.status == "continuing", first.message
    # when a second start arrives (a person, or another schedule)
    second = world.engine().start("manual", "second")
    # then it is refused, names the running run, and does not touch its record
    assert second.status == "refused", second.message
    assert second.run_id == first.run_id
    [run] = world.runs()
    assert run["continuations"]["N"] == "1"
    # and the continuation still finishes the run exactly
    outcome = world.follow(world.engine().resume(*world.continuations[-1]))
    assert outcome.status == "succeeded", outcome.message
    assert_state_equals_upstream(world)


def test_late_continuation_does_not_join_a_run_another_worker_took_over(world: World) -> None:
    # given a run that handed over, whose continuation event is delayed past the lease
    first = world.engine(pages_per_invocation=2).start("scheduled")
    assert first.status == "continuing"
    late_event = world.continuations[-1]
    world.now = NOW + timedelta(seconds=LEASE + 1)
    # and a scheduled start that took the run over and is still working on it
    # (simulated by a worker stopped in the middle of a page: its lease is live)
    taker = CrashingStore(world.table, client=world.dynamodb, sleep=world.sleep, crash_on_call=1)
    with pytest.raises(StorageError):
        world.engine(store=taker).start("scheduled")
    written = world.written()
    # when the delayed continuation finally arrives
    outcome = world.engine().resume(*late_event)
    # then it must not work on the run that another worker now owns
    assert outcome.status in ("stale", "refused"), outcome.message
    assert world.written() == written


def test_run_forced_into_continuations_by_a_tiny_time_budget_ends_with_the_same_state(
    world: World,
) -> None:
    # given invocations that run out of time after three pages each
    # when a run starts and every continuation it asks for is played
    outcome = world.follow(
        world.engine(pages_per_invocation=3).start("scheduled"), pages_per_invocation=3
    )
    # then it needed several invocations and ends with the upstream state, written once
    assert outcome.status == "succeeded", outcome.message
    assert len(world.continuations) >= 4
    assert [seq for _, seq in world.continuations] == list(range(1, len(world.continuations) + 1))
    assert_state_equals_upstream(world)
    assert_snapshot_is_exact(world)
    assert world.written() == distinct_records()
    [run] = world.runs()
    assert run["continuations"]["N"] == str(len(world.continuations))


def test_replayed_continuation_does_nothing(world: World) -> None:
    # given a run that continued once and then finished
    outcome = world.follow(world.engine(pages_per_invocation=8).start("scheduled"))
    assert outcome.status == "succeeded"
    written = world.written()
    # when the first continuation event is delivered again
    replay = world.engine().resume(*world.continuations[0])
    # then it is stale and writes nothing
    assert replay.status == "stale"
    assert world.written() == written


# Four 429s each on pages 2 and 4 of the findings (requests 2-5 and 7-10) and on page 1 of the
# remediations: twelve in all, never two rules on one request.
STORMS = (("vulnerabilities", 2), ("vulnerabilities", 7), ("vulnerability-remediations", 1))


@pytest.mark.parametrize("retry_after", [3, None])
def test_429_storm_is_ridden_out_within_the_deadline(world: World, retry_after: int | None) -> None:
    # given a storm of 429s on three pages, with or without Retry-After
    world.standin.set_faults(
        plan(
            *(
                FaultRule("rate_storm", endpoint=endpoint, at=at, times=4, retry_after=retry_after)
                for endpoint, at in STORMS
            )
        )
    )
    deadline_seconds = 300.0
    deadline = Deadline(world.clock() + deadline_seconds, clock=world.clock)
    client = world.client(deadline=deadline, max_attempts=8)
    # when a run goes through it
    outcome = world.engine(client=client, remaining=deadline.remaining, margin=5).start("manual")
    # then it succeeds within the deadline it was given, having waited as told
    assert outcome.status == "succeeded", outcome.message
    stats = world.standin.stats()["stats"]
    assert stats["rate_limited"] == 12
    assert world.sleep.total <= deadline_seconds
    if retry_after is not None:
        assert world.sleep.total >= 12 * retry_after
    assert_state_equals_upstream(world)
    assert world.written() == distinct_records()


def test_storm_longer_than_the_deadline_hands_over_with_its_checkpoint(world: World) -> None:
    # given a storm that never ends, on page 2 of the findings, and a 100 s budget
    world.standin.set_faults(
        plan(FaultRule("rate_storm", endpoint="vulnerabilities", at=2, times=None, retry_after=30))
    )
    deadline = Deadline(world.clock() + 100.0, clock=world.clock)
    client = world.client(deadline=deadline, max_attempts=10)
    # when a run starts
    outcome = world.engine(client=client, remaining=deadline.remaining, margin=5).start("manual")
    # then it stops cleanly inside its budget with its checkpoint at that page
    assert outcome.status in ("continuing", "failed"), outcome.message
    assert world.sleep.total <= 100.0
    [run] = world.runs()
    checkpoint = run["checkpoint"]["M"]
    assert checkpoint["phase"]["S"] == "vulnerabilities"
    assert checkpoint["page_number"]["N"] == "2"
    # when the storm is over and the run carries on
    world.standin.set_faults(plan())
    if outcome.status == "continuing":
        final = world.follow(world.engine().resume(*world.continuations[-1]))
    else:
        final = world.engine().start("scheduled")
    # then it ends with the upstream state, each record written once
    assert final.status == "succeeded", final.message
    assert_state_equals_upstream(world)
    assert world.written() == distinct_records()


def test_token_revoked_mid_run_mints_exactly_one_new_token(world: World) -> None:
    # given an upstream that revokes the token after five authorised requests
    world.standin.set_faults(plan(FaultRule("revoke_token", after=5)))
    # when a run starts
    outcome = world.engine().start("scheduled")
    # then one token was minted at the start and exactly one after the revocation
    assert outcome.status == "succeeded", outcome.message
    stats = world.standin.stats()["stats"]
    assert stats["tokens_minted"] == 2
    assert stats["responses"].get("401") == 1
    assert world.clients[0].stats.token_reauths == 1
    assert_state_equals_upstream(world)


def test_malformed_records_are_quarantined_with_reasons_and_the_run_succeeds(
    world: World,
) -> None:
    # given a page of findings whose first three records are broken in three ways
    world.standin.set_faults(
        plan(FaultRule("malformed", endpoint="vulnerabilities", at=2, count=3))
    )
    bad = [rec["id"] for rec in DATA.iter_vulnerabilities()][PAGE_SIZE : PAGE_SIZE + 3]
    # when a run starts
    outcome = world.engine().start("scheduled")
    # then it succeeds, the bad records sit in quarantine with a reason each
    assert outcome.status == "succeeded", outcome.message
    assert outcome.run_counts.quarantined == 3
    [key] = world.keys("quarantine/vulnerabilities/")
    assert key == (f"quarantine/vulnerabilities/dt={NOW:%Y-%m-%d}/run={outcome.run_id}/page-2.json")
    document = world.object_json(key)
    assert [reject["id"] for reject in document["rejects"]] == bad
    assert all(isinstance(r["reason"], str) and r["reason"] for r in document["rejects"])
    assert document["count"] == 3
    # and everything else is stored exactly; nothing was deleted for being "unseen"
    assert_state_equals_upstream(world, left_out=bad)
    assert outcome.run_counts.deleted == 0
