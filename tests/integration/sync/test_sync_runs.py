"""Sync runs end to end in-process: real engine, DynamoStore and S3Archive on moto, the real
Vanta client against the stand-in, compared with the stand-in's data set as the oracle."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from lambdakit.breaker import clear_breakers
from lambdakit.retry import Deadline
from localstage.aws import (
    MotoServer,
    local_client,
    prepare_local_stack,
    start_moto,
)
from localstage.vanta_data import Dataset, Revision
from localstage.vanta_standin import (
    DEFAULT_CREDENTIALS,
    FaultPlan,
    FaultRule,
    StandIn,
    start_standin,
)
from vulnstats.archive import S3Archive
from vulnstats.dynamo import DynamoStore
from vulnstats.errors import StorageError
from vulnstats.sync import RunOutcome, SyncConfig, SyncEngine
from vulnstats.vanta import StaticCredentials, VantaClient, VantaClientConfig, new_breaker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from vulnstats.models import Entity
    from vulnstats.ports import StateItem

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-runs")]

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
DATA = Dataset(seed=23, vulnerability_count=150, asset_count=20, remediation_count=60, now=NOW)
PAGE_SIZE = 20
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
ENTITIES: tuple[Entity, ...] = ("assets", "vulnerabilities", "remediations")
PK = {"assets": "ASSET", "vulnerabilities": "VULN", "remediations": "REM"}
ENDPOINT = {
    "assets": "vulnerable-assets",
    "vulnerabilities": "vulnerabilities",
    "remediations": "vulnerability-remediations",
}
LEASE = 960


# ----------------------------------------------------------------------------- fakes


class FakeClock:
    """Monotonic seconds shared by the stand-in (token expiry) and the client (deadlines)."""

    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


class FakeSleep:
    """Moves the shared clock instead of sleeping and records every wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.now += seconds

    @property
    def total(self) -> float:
        return sum(self.calls)


def plan(*rules: FaultRule) -> FaultPlan:
    """A fault plan without the token-endpoint rate limit (each invocation mints a token)."""
    return FaultPlan(rules=rules, token_rate_limit_per_minute=0)


# ----------------------------------------------------------------------------- the world


class World:
    """One deployment: its own table and bucket, the stand-in, and the invocations of a test."""

    def __init__(
        self,
        *,
        table: str,
        bucket: str,
        dynamodb: DynamoDBClient,
        s3: S3Client,
        standin: StandIn,
        clock: FakeClock,
        session: requests.Session,
    ) -> None:
        self.table = table
        self.dynamodb = dynamodb
        self.s3 = s3
        self.bucket = bucket
        self.standin = standin
        self.clock = clock
        self.sleep = FakeSleep(clock)
        self.session = session
        self.store = DynamoStore(table, client=dynamodb, sleep=self.sleep)
        self.archive = S3Archive(bucket, client=s3)
        self.now = NOW  # the engine's wall clock: the data set's "now", so stats are exact
        self.continuations: list[tuple[str, int]] = []
        self.clients: list[VantaClient] = []
        self._runs = 0

    def client(self, *, deadline: Deadline | None = None, max_attempts: int = 5) -> VantaClient:
        config = VantaClientConfig(
            base_url=self.standin.url,
            page_size=PAGE_SIZE,
            pages_per_minute=None,
            max_attempts=max_attempts,
        )
        client = VantaClient(
            StaticCredentials(DEFAULT_CREDENTIALS.client_id, DEFAULT_CREDENTIALS.client_secret),
            config=config,
            session=self.session,
            clock=self.clock,
            wall_clock=self.clock,
            sleep=self.sleep,
            deadline=deadline,
            # A fresh breaker per invocation: a new execution environment.
            breaker=new_breaker(config, clock=self.clock),
            random_fn=lambda: 0.5,
        )
        self.clients.append(client)
        return client

    def _run_id(self, now: datetime) -> str:
        # Sortable and unique although the fake wall clock stands still.
        self._runs += 1
        return f"{now:%Y%m%dT%H%M%SZ}-{self._runs:08x}"

    def engine(
        self,
        *,
        client: VantaClient | None = None,
        store: DynamoStore | None = None,
        remaining: Callable[[], float] | None = None,
        pages_per_invocation: int | None = None,
        margin: float = 90.0,
    ) -> SyncEngine:
        upstream = client if client is not None else self.client()
        start_pages = upstream.stats.pages
        state = store if store is not None else self.store

        def remaining_seconds() -> float:
            if remaining is not None:
                return remaining()
            if pages_per_invocation is not None:
                done = upstream.stats.pages - start_pages
                return 0.0 if done >= pages_per_invocation else 800.0
            return 800.0

        return SyncEngine(
            client=upstream,
            state=state,
            runs=state,
            snapshots=state,
            archive=self.archive,
            start_continuation=lambda run_id, seq: self.continuations.append((run_id, seq)),
            remaining_seconds=remaining_seconds,
            clock=lambda: self.now,
            config=SyncConfig(
                time_margin_seconds=margin, lock_lease_seconds=LEASE, page_size=PAGE_SIZE
            ),
            run_id_factory=self._run_id,
        )

    def follow(self, outcome: RunOutcome, **engine_options: Any) -> RunOutcome:
        """Play the continuations a run asked for until it stops continuing."""
        for _ in range(100):
            if outcome.status != "continuing":
                return outcome
            run_id, sequence = self.continuations[-1]
            outcome = self.engine(**engine_options).resume(run_id, sequence)
        raise AssertionError("the run kept continuing for 100 invocations")

    # ----- reading what was stored -----

    def items(self, entity: Entity) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": PK[entity]}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                found[item["sk"]["S"]] = dict(item)
        return found

    def runs(self) -> list[dict[str, Any]]:
        response = self.dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "RUN"}},
            ConsistentRead=True,
        )
        return [dict(item) for item in response["Items"]]

    def snapshot(self) -> dict[str, Any]:
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": "STATS"}, "sk": {"S": "LATEST"}},
            ConsistentRead=True,
        )["Item"]
        snapshot: dict[str, Any] = json.loads(item["snapshot"]["S"])
        return snapshot

    def keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys.extend(entry["Key"] for entry in page.get("Contents", []))
        return keys

    def object_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def written(self) -> Counter[str]:
        return Counter(self.store.items_written)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with start_moto("127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="module")
def dynamodb(moto: MotoServer) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", moto.endpoint_url, REGION)
    return client


@pytest.fixture(scope="module")
def s3(moto: MotoServer) -> S3Client:
    client: S3Client = local_client("s3", moto.endpoint_url, REGION)
    return client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def standin(clock: FakeClock) -> Iterator[StandIn]:
    with start_standin(port=0, dataset=DATA, clock=clock, faults=plan()) as server:
        yield server


@pytest.fixture
def world(
    moto: MotoServer, dynamodb: DynamoDBClient, s3: S3Client, standin: StandIn, clock: FakeClock
) -> Iterator[World]:
    clear_breakers()
    # A stack of its own per test: a fresh table and bucket on the module's server.
    _, created = prepare_local_stack(
        REPO / "template.yaml",
        moto.endpoint_url,
        vanta_credentials={
            "client_id": DEFAULT_CREDENTIALS.client_id,
            "client_secret": DEFAULT_CREDENTIALS.client_secret,
        },
        stack_name=f"sync-{uuid.uuid4().hex[:10]}",
        region=REGION,
    )
    with requests.Session() as session:
        yield World(
            table=created["StateTable"],
            bucket=created["ArchiveBucket"],
            dynamodb=dynamodb,
            s3=s3,
            standin=standin,
            clock=clock,
            session=session,
        )


# ----------------------------------------------------------------------------- the oracle


def _date(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stored_date(item: dict[str, Any], name: str) -> datetime | None:
    return _date(item[name]["S"]) if name in item else None


def upstream(dataset: Dataset = DATA) -> dict[Entity, dict[str, dict[str, Any]]]:
    return {
        "assets": {rec["id"]: rec for rec in dataset.iter_assets()},
        "vulnerabilities": {rec["id"]: rec for rec in dataset.iter_vulnerabilities()},
        "remediations": {rec["id"]: rec for rec in dataset.iter_remediations()},
    }


def assert_state_equals_upstream(
    world: World, dataset: Dataset = DATA, *, left_out: Sequence[str] = ()
) -> None:
    """Same ids, same raw content, and the main attributes derived from the raw record."""
    expected = upstream(dataset)
    for record_id in left_out:
        expected["vulnerabilities"].pop(record_id)
    assets = expected["assets"]
    for entity in ENTITIES:
        stored = world.items(entity)
        assert set(stored) == set(expected[entity]), entity
        for record_id, item in stored.items():
            raw = expected[entity][record_id]
            assert json.loads(item["data"]["S"]) == raw, (entity, record_id)
            if entity == "assets":
                assert item["assetType"]["S"] == raw["assetType"]
                assert item["name"]["S"] == raw["name"]
            elif entity == "vulnerabilities":
                assert item["severity"]["S"] == raw["severity"]
                assert item["integrationId"]["S"] == raw["integrationId"]
                assert item["assetId"]["S"] == raw["targetId"]
                assert item["assetType"]["S"] == assets[raw["targetId"]]["assetType"]
                assert item["isFixable"]["BOOL"] is raw["isFixable"]
                assert item["name"]["S"] == raw["name"]
                assert item.get("packageIdentifier", {}).get("S") == raw["packageIdentifier"]
                assert item["deactivated"]["BOOL"] is (raw["deactivateMetadata"] is not None)
                assert _stored_date(item, "firstDetectedDate") == _date(raw["firstDetectedDate"])
                assert _stored_date(item, "remediateByDate") == _date(raw["remediateByDate"])
            else:
                assert item["severity"]["S"] == raw["severity"].upper()
                assert _stored_date(item, "detectedDate") == _date(raw["detectedDate"])
                assert _stored_date(item, "remediationDate") == _date(raw["remediationDate"])
                assert _stored_date(item, "slaDeadlineDate") == _date(raw["slaDeadlineDate"])


def _is_open(raw: dict[str, Any], now: datetime) -> bool:
    meta = raw["deactivateMetadata"]
    if meta is None:
        return True
    if meta["isVulnDeactivatedIndefinitely"] or meta["deactivatedUntilDate"] is None:
        return False
    until = _date(meta["deactivatedUntilDate"])
    return until is not None and until <= now


def expected_statistics(dataset: Dataset, now: datetime) -> dict[str, Any]:
    """The snapshot's figures, computed straight from the upstream records (no vulnstats)."""
    assets = {rec["id"]: rec["assetType"] for rec in dataset.iter_assets()}
    open_findings = [v for v in dataset.iter_vulnerabilities() if _is_open(v, now)]
    by_severity = dict.fromkeys(SEVERITIES, 0)
    overdue = dict.fromkeys(SEVERITIES, 0)
    by_asset_type: Counter[str] = Counter()
    by_integration: Counter[str] = Counter()
    due = {7: 0, 14: 0, 30: 0}
    ageing = {"0-30": 0, "31-90": 0, "91-180": 0, "181-365": 0, ">365": 0}
    fixable = 0
    for finding in open_findings:
        by_severity[finding["severity"]] += 1
        by_asset_type[assets[finding["targetId"]]] += 1
        by_integration[finding["integrationId"]] += 1
        fixable += finding["isFixable"] is True
        deadline = _date(finding["remediateByDate"])
        if deadline is not None and deadline < now:
            overdue[finding["severity"]] += 1
        elif deadline is not None:
            for days in due:
                if deadline <= now + timedelta(days=days):
                    due[days] += 1
        first = _date(finding["firstDetectedDate"])
        assert first is not None
        age = (now - first) // timedelta(days=1)
        label = (
            "0-30"
            if age <= 30
            else "31-90"
            if age <= 90
            else "91-180"
            if age <= 180
            else "181-365"
            if age <= 365
            else ">365"
        )
        ageing[label] += 1
    remediations: dict[str, dict[str, Any]] = {}
    for severity in SEVERITIES:
        durations: list[float] = []
        with_sla = on_time = 0
        for rem in dataset.iter_remediations():
            done, detected = _date(rem["remediationDate"]), _date(rem["detectedDate"])
            assert done is not None
            assert detected is not None
            if rem["severity"].upper() != severity or not now - timedelta(days=90) <= done <= now:
                continue
            durations.append((done - detected).total_seconds() / 86_400)
            sla = _date(rem["slaDeadlineDate"])
            if sla is not None:
                with_sla += 1
                on_time += done <= sla
        remediations[severity] = {
            "count": len(durations),
            "mean_days_to_remediate": sum(durations) / len(durations) if durations else None,
            "on_time_rate": on_time / with_sla if with_sla else None,
        }
    every = sum(1 for _ in dataset.iter_vulnerabilities())
    return {
        "open": len(open_findings),
        "deactivated": every - len(open_findings),
        "no_sla": sum(1 for v in open_findings if v["remediateByDate"] is None),
        "open_by_severity": by_severity,
        "open_by_asset_type": dict(by_asset_type),
        "open_by_integration": dict(by_integration),
        "overdue_by_severity": overdue,
        "due": {f"within_{days}_days": count for days, count in due.items()},
        "ageing": ageing,
        "fixable": {"fixable": fixable, "not_fixable": len(open_findings) - fixable},
        "remediations": remediations,
    }


def assert_snapshot_is_exact(world: World, dataset: Dataset = DATA) -> None:
    stored = world.snapshot()
    expected = expected_statistics(dataset, world.now)
    assert stored["totals"]["open"] == expected["open"]
    assert stored["totals"]["no_sla"] == expected["no_sla"]
    assert stored["totals"]["deactivated"] == expected["deactivated"]
    assert stored["open_by_severity"] == expected["open_by_severity"]
    assert {k: v for k, v in stored["open_by_asset_type"].items() if v} == expected[
        "open_by_asset_type"
    ]
    assert stored["open_by_integration"] == expected["open_by_integration"]
    assert stored["overdue_by_severity"] == expected["overdue_by_severity"]
    assert stored["due"] == expected["due"]
    assert stored["ageing"] == expected["ageing"]
    assert stored["fixable"] == expected["fixable"]
    for severity, figures in expected["remediations"].items():
        got = stored["remediations"]["by_severity"][severity]
        assert got["count"] == figures["count"], severity
        if figures["mean_days_to_remediate"] is None:
            assert got["mean_days_to_remediate"] is None
        else:
            assert got["mean_days_to_remediate"] == pytest.approx(
                figures["mean_days_to_remediate"], abs=0.006
            )
        if figures["on_time_rate"] is None:
            assert got["on_time_rate"] is None
        else:
            assert got["on_time_rate"] == pytest.approx(figures["on_time_rate"], abs=6e-5)


def distinct_records(dataset: Dataset = DATA) -> Counter[str]:
    return Counter(
        {
            "assets": dataset.count_assets(),
            "vulnerabilities": sum(1 for _ in dataset.iter_vulnerability_ids()),
            "remediations": dataset.count_remediations(),
        }
    )


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


class CrashingStore(DynamoStore):
    """Writes the first half of one page of findings, then the table 'goes away' once."""

    def __init__(self, *args: Any, crash_on_call: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crash_on_call = crash_on_call
        self.calls = 0

    def write(self, entity: Entity, items: Sequence[StateItem]) -> None:
        if entity == "vulnerabilities":
            self.calls += 1
            if self.calls == self.crash_on_call:
                super().write(entity, items[: len(items) // 2])
                raise StorageError("simulated crash in the middle of a page")
        super().write(entity, items)


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
