"""A sync deployment in-process for integration tests: engine, moto, stand-in, oracle."""

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
from localstage.aws import (
    MotoServer,
    local_client,
    prepare_local_stack,
)
from localstage.vanta_data import Dataset
from localstage.vanta_standin import (
    DEFAULT_CREDENTIALS,
    FaultPlan,
    FaultRule,
    StandIn,
)
from vulnstats.archive import S3Archive
from vulnstats.dynamo import DynamoStore
from vulnstats.errors import StorageError
from vulnstats.queue import SyncQueue, continuation_starter
from vulnstats.sync import RunOutcome, SyncConfig, SyncEngine
from vulnstats.triggers import ContinuationTrigger, parse_message
from vulnstats.vanta import StaticCredentials, VantaClient, VantaClientConfig, new_breaker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from lambdakit.metrics import InMemoryMetricSink
    from lambdakit.retry import Deadline
    from vulnstats.models import Entity
    from vulnstats.ports import StateItem
    from vulnstats.triggers import Trigger


REPO = Path(__file__).resolve().parents[2]
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
        requests_queue_url: str,
        sqs: Any,
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
        # Continuations go through the stack's SyncRequests queue, as on Lambda (the new path).
        self.sqs = sqs
        self.requests_queue = SyncQueue(requests_queue_url, client=sqs)
        self.continuations: list[tuple[str, int]] = []  # every one queued, in order
        self.clients: list[VantaClient] = []
        self._runs = 0

    def client(
        self, *, deadline: Deadline | None = None, max_attempts: int = 5, **options: Any
    ) -> VantaClient:
        """A Vanta client on the stand-in; ``options`` override VantaClientConfig fields."""
        config = VantaClientConfig(
            **{
                "base_url": self.standin.url,
                "page_size": PAGE_SIZE,
                "pages_per_minute": None,
                "max_attempts": max_attempts,
                **options,
            }
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
        archive: S3Archive | None = None,
        metrics: InMemoryMetricSink | None = None,
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
            archive=archive if archive is not None else self.archive,
            start_continuation=continuation_starter(self._queue_continuation),
            remaining_seconds=remaining_seconds,
            clock=lambda: self.now,
            config=SyncConfig(
                time_margin_seconds=margin, lock_lease_seconds=LEASE, page_size=PAGE_SIZE
            ),
            run_id_factory=self._run_id,
            metrics=metrics,
        )

    def _queue_continuation(self, event: Mapping[str, Any], *, delay_seconds: float = 0) -> str:
        self.continuations.append((str(event["run_id"]), int(event["sequence"])))
        return self.requests_queue.send(event, delay_seconds=delay_seconds)

    def _take_latest(self) -> Trigger:
        """Receive every queued message (deleting it) and return the latest continuation.

        Tests may have played earlier continuations directly; the latest is the one the run
        waits for, read from its message body as the sync function's event source delivers it.
        """
        url, latest = self.requests_queue.url, None
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                trigger = parse_message(message["Body"])
                if trigger == ContinuationTrigger(*self.continuations[-1]):
                    latest = trigger
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert latest is not None, f"continuation {self.continuations[-1]} was not queued"
        return latest

    def follow(self, outcome: RunOutcome, **engine_options: Any) -> RunOutcome:
        """Play the continuations a run queued until it stops continuing."""
        for _ in range(100):
            if outcome.status != "continuing":
                return outcome
            outcome = self.engine(**engine_options).handle(self._take_latest())
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

    def snapshot(self, attribute: str = "snapshot") -> dict[str, Any]:
        """The latest stored snapshot (``snapshot_with_deactivated``: the other variant)."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": "STATS"}, "sk": {"S": "LATEST"}},
            ConsistentRead=True,
        )["Item"]
        snapshot: dict[str, Any] = json.loads(item[attribute]["S"])
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


def new_world(
    moto: MotoServer, dynamodb: DynamoDBClient, s3: S3Client, standin: StandIn, clock: FakeClock
) -> Iterator[World]:
    """A stack of its own (a fresh table and bucket on the shared server) for one test."""
    clear_breakers()
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
            requests_queue_url=created["SyncRequestsQueue"],
            sqs=local_client("sqs", moto.endpoint_url, REGION),
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
            "meanDaysToRemediate": sum(durations) / len(durations) if durations else None,
            "onTimeRate": on_time / with_sla if with_sla else None,
        }
    every = sum(1 for _ in dataset.iter_vulnerabilities())
    return {
        "open": len(open_findings),
        "deactivated": every - len(open_findings),
        "noSla": sum(1 for v in open_findings if v["remediateByDate"] is None),
        "openBySeverity": by_severity,
        "openByAssetType": dict(by_asset_type),
        "openByIntegration": dict(by_integration),
        "overdueBySeverity": overdue,
        "due": {f"within{days}Days": count for days, count in due.items()},
        "ageing": ageing,
        "fixable": {"fixable": fixable, "notFixable": len(open_findings) - fixable},
        "remediations": remediations,
    }


def assert_snapshot_is_exact(world: World, dataset: Dataset = DATA) -> None:
    stored = world.snapshot()
    expected = expected_statistics(dataset, world.now)
    assert stored["totals"]["open"] == expected["open"]
    assert stored["totals"]["noSla"] == expected["noSla"]
    assert stored["totals"]["deactivated"] == expected["deactivated"]
    every = world.snapshot("snapshot_with_deactivated")["totals"]
    assert every["open"] == expected["open"] + expected["deactivated"]
    assert stored["openBySeverity"] == expected["openBySeverity"]
    assert {k: v for k, v in stored["openByAssetType"].items() if v} == expected["openByAssetType"]
    assert stored["openByIntegration"] == expected["openByIntegration"]
    assert stored["overdueBySeverity"] == expected["overdueBySeverity"]
    assert stored["due"] == expected["due"]
    assert stored["ageing"] == expected["ageing"]
    assert stored["fixable"] == expected["fixable"]
    for severity, figures in expected["remediations"].items():
        got = stored["remediations"]["bySeverity"][severity]
        assert got["count"] == figures["count"], severity
        if figures["meanDaysToRemediate"] is None:
            assert got["meanDaysToRemediate"] is None
        else:
            assert got["meanDaysToRemediate"] == pytest.approx(
                figures["meanDaysToRemediate"], abs=0.006
            )
        if figures["onTimeRate"] is None:
            assert got["onTimeRate"] is None
        else:
            assert got["onTimeRate"] == pytest.approx(figures["onTimeRate"], abs=6e-5)


def distinct_records(dataset: Dataset = DATA) -> Counter[str]:
    return Counter(
        {
            "assets": dataset.count_assets(),
            "vulnerabilities": sum(1 for _ in dataset.iter_vulnerability_ids()),
            "remediations": dataset.count_remediations(),
        }
    )


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
