"""Sync requests through the SyncRequests queue on the local stage: burst, poison, kill, races."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stage_support import invoke_client, isolated_stage
from sync_stage import items, poll, runs, set_env, set_faults, set_revision

from localstage.aws import local_client
from localstage.vanta_data import Dataset, Revision
from ops.dlq import SqsQueue, SqsRequeue, redrive_queue
from vulnstats.triggers import manual_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from localstage.stage import LocalStage

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sync-queue")]

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DATA = Dataset(seed=43, vulnerability_count=150, asset_count=20, remediation_count=60, now=_TODAY)
BURST = 500
# The kill test's function: 30 s invocations that hand over when 20 s are left, and a 5 s margin
# after the deadline before a dead worker's message, lease and idempotency record are free.
KILL_TIMEOUT_S = 30
KILL_MARGIN_S = 5


@pytest.fixture(scope="module")
def logs() -> list[tuple[str, str]]:
    return []


@pytest.fixture(scope="module")
def stage(
    tmp_path_factory: pytest.TempPathFactory, logs: list[tuple[str, str]]
) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("sync-queue"),
        name="sync-queue",
        dataset=DATA,
        log_sink=lambda line: logs.append((line.function, line.text)),
    ) as running:
        first = running.invoke("SyncFunction", manual_event("the data the tests start from"))
        assert first.function_error is None, first.payload
        yield running


@pytest.fixture(scope="module")
def dynamodb(stage: LocalStage) -> DynamoDBClient:
    client: DynamoDBClient = local_client("dynamodb", stage.urls["aws"], REGION)
    return client


@pytest.fixture(scope="module")
def sqs(stage: LocalStage) -> SQSClient:
    client: SQSClient = local_client("sqs", stage.urls["aws"], REGION)
    return client


def _depth(sqs: SQSClient, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return sum(
        int(attributes.get(name, "0"))
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def _settled(stage: LocalStage, dynamodb: DynamoDBClient, sqs: SQSClient) -> bool | None:
    """True once no request waits or is in flight and no run is live."""
    table = stage.physical_ids["StateTable"]
    if _depth(sqs, stage.physical_ids["SyncRequestsQueue"]):
        return None
    if "running" in runs(dynamodb, table).values():
        return None
    return True


def _run_item(dynamodb: DynamoDBClient, table: str, run_id: str) -> dict[str, Any]:
    return dynamodb.get_item(
        TableName=table, Key={"pk": {"S": "RUN"}, "sk": {"S": run_id}}, ConsistentRead=True
    )["Item"]


def test_a_burst_of_post_sync_gets_only_202s_and_at_most_two_runs(
    stage: LocalStage, dynamodb: DynamoDBClient, sqs: SQSClient
) -> None:
    table = stage.physical_ids["StateTable"]
    poll(lambda: _settled(stage, dynamodb, sqs), timeout=120, what="the stage did not settle")
    before = set(runs(dynamodb, table))
    headers = {"x-api-key": stage.api_key}

    def post(number: int) -> tuple[int, str | None]:
        response = requests.post(
            f"{stage.urls['api']}/sync",
            json={"reason": f"burst {number}"},
            headers=headers,
            timeout=120,
        )
        return response.status_code, response.json().get("runId")

    # given runs that take a while, as on AWS (a slow findings listing in small pages)
    client = invoke_client(stage)
    set_env(client, VANTA_PAGE_SIZE="10")
    set_faults(
        stage,
        {
            "rules": [{"kind": "latency", "endpoint": "vulnerabilities", "seconds": 1.5}],
            "token_rate_limit_per_minute": 0,
        },
    )
    try:
        # when 500 people ask for a sync at once
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(post, range(BURST)))
        answered = time.monotonic() - started
        # then every request is accepted (no 409, no 5xx) and names a run
        assert Counter(status for status, _ in answers) == {202: BURST}
        promised = {run_id for _, run_id in answers}
        # and once the queue has drained, at most two runs carried them all, each one promised
        poll(lambda: _settled(stage, dynamodb, sqs), timeout=300, what="the burst did not drain")
        drained = time.monotonic() - started
        new = {
            run_id: status
            for run_id, status in runs(dynamodb, table).items()
            if run_id not in before
        }
        assert 1 <= len(new) <= 2, new
        assert set(new.values()) == {"succeeded"}
        assert promised <= set(new), (promised, new)
    finally:
        set_faults(stage, {"rules": [], "token_rate_limit_per_minute": 0})
        set_env(client, VANTA_PAGE_SIZE="100")
    assert _depth(sqs, stage.physical_ids["DeadLetterQueue"]) == 0
    print(  # the figures of docs/performance.md ("Sync requests through the queue")
        f"\nburst: {BURST} requests, {len(answers)} answered 202 in {answered:.1f} s, "
        f"{len(promised)} run ids promised, {len(new)} runs, drained in {drained:.1f} s"
    )


def test_a_poison_message_reaches_the_dlq_and_the_next_request_is_served(
    stage: LocalStage, dynamodb: DynamoDBClient, sqs: SQSClient, logs: list[tuple[str, str]]
) -> None:
    table = stage.physical_ids["StateTable"]
    queue, dlq = stage.physical_ids["SyncRequestsQueue"], stage.physical_ids["DeadLetterQueue"]
    poll(lambda: _settled(stage, dynamodb, sqs), timeout=120, what="the stage did not settle")
    before = set(runs(dynamodb, table))
    # given a message that is not a trigger, then a valid request behind it
    sqs.send_message(QueueUrl=queue, MessageBody='{"action": "explode"}')
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(manual_event("behind the poison")))

    # then the valid request is served while the poison is retried
    def served() -> bool | None:
        fresh = {k: v for k, v in runs(dynamodb, table).items() if k not in before}
        return True if "succeeded" in fresh.values() else None

    poll(served, timeout=120, what="the request behind the poison was not served")

    # and the poison reaches the dead-letter queue after maxReceiveCount (5) receives
    def dead_lettered() -> dict[str, Any] | None:
        found = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"], VisibilityTimeout=0)
        return next((dict(m) for m in found.get("Messages", [])), None)

    message = poll(dead_lettered, timeout=120, what="the poison did not reach the DLQ")
    assert message["Body"] == '{"action": "explode"}'
    # with its reason in the sync function's log, once per receive
    rejected = [line for _, line in logs if "message is not a sync trigger" in line]
    assert len(rejected) >= 5
    assert "unknown value 'explode'" in rejected[-1]
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
    poll(lambda: _settled(stage, dynamodb, sqs), timeout=120, what="the queue did not drain")


def test_a_worker_killed_mid_run_is_resumed_from_the_queue_within_its_timeout_and_margin(
    stage: LocalStage, dynamodb: DynamoDBClient, sqs: SQSClient
) -> None:
    table = stage.physical_ids["StateTable"]
    client = invoke_client(stage)
    poll(lambda: _settled(stage, dynamodb, sqs), timeout=120, what="the stage did not settle")
    before = set(runs(dynamodb, table))
    revised = DATA.with_revision(Revision(number=2, change_fraction=0.2, added_count=9))
    set_revision(stage, revised.revision)
    # given short invocations that hand over after ~10 s, and a slow findings listing
    set_env(
        client,
        timeout=KILL_TIMEOUT_S,
        SYNC_TIME_MARGIN_SECONDS="20",
        SYNC_DEADLINE_MARGIN_SECONDS=str(KILL_MARGIN_S),
        VANTA_PAGE_SIZE="10",
    )
    set_faults(
        stage,
        {
            "rules": [{"kind": "latency", "endpoint": "vulnerabilities", "seconds": 1.0}],
            "token_rate_limit_per_minute": 0,
        },
    )
    try:
        sqs.send_message(
            QueueUrl=stage.physical_ids["SyncRequestsQueue"],
            MessageBody=json.dumps(manual_event("to be killed")),
        )

        # when a continuation is under way, its worker is killed
        def continuing() -> str | None:
            for run_id, status in runs(dynamodb, table).items():
                if run_id not in before and status == "running":
                    item = _run_item(dynamodb, table, run_id)
                    if int(item["continuations"]["N"]) >= 1:
                        return run_id
            return None

        run_id = poll(continuing, timeout=120, what="no continuation started")
        time.sleep(2)  # into the continuation's pages
        assert stage.runtime is not None
        victims = stage.runtime.busy_worker_pids("SyncFunction")
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        stuck_at = _run_item(dynamodb, table, run_id)["checkpoint"]

        # then the queue brings the request back and the run moves on from its checkpoint, with
        # no manual start, within the function's timeout plus the margin (and polling slack)
        def moved_on() -> bool | None:
            item = _run_item(dynamodb, table, run_id)
            return (
                True if item["checkpoint"] != stuck_at or item["status"]["S"] != "running" else None
            )

        poll(
            moved_on, timeout=KILL_TIMEOUT_S + KILL_MARGIN_S + 15, what="the run was not taken over"
        )
        resumed_in = time.monotonic() - killed_at
        # and finishes
        poll(
            lambda: True if runs(dynamodb, table).get(run_id) == "succeeded" else None,
            timeout=240,
            what="the resumed run did not finish",
        )
    finally:
        set_faults(stage, {"rules": [], "token_rate_limit_per_minute": 0})
        set_env(
            client,
            timeout=900,
            SYNC_TIME_MARGIN_SECONDS="90",
            SYNC_DEADLINE_MARGIN_SECONDS="30",
            VANTA_PAGE_SIZE="100",
        )
    # and no other run was started; the table holds exactly the revised upstream set
    assert set(runs(dynamodb, table)) - before == {run_id}
    assert items(dynamodb, table, "VULN") == {r["id"]: r for r in revised.iter_vulnerabilities()}
    assert items(dynamodb, table, "ASSET") == {r["id"]: r for r in revised.iter_assets()}
    # and nothing was written twice: the run wrote no more than what changed upstream
    counts = _run_item(dynamodb, table, run_id)["counts"]["M"]
    assert int(counts["written"]["N"]) <= int(counts["fetched"]["N"])
    print(f"\nkill -9: run {run_id} taken over {resumed_in:.1f} s after its worker was killed")


def test_schedule_person_and_redrive_racing_never_run_two_syncs_at_once(
    stage: LocalStage, dynamodb: DynamoDBClient, sqs: SQSClient
) -> None:
    table = stage.physical_ids["StateTable"]
    queue, dlq = stage.physical_ids["SyncRequestsQueue"], stage.physical_ids["DeadLetterQueue"]
    poll(lambda: _settled(stage, dynamodb, sqs), timeout=120, what="the stage did not settle")
    before = set(runs(dynamodb, table))
    # given a request waiting in the DLQ and runs that take a few seconds
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(manual_event("from the dlq")))
    set_faults(
        stage,
        {
            "rules": [{"kind": "latency", "endpoint": "vulnerabilities", "seconds": 0.5}],
            "token_rate_limit_per_minute": 0,
        },
    )
    scheduled = json.loads((REPO / "events" / "sync_scheduled.json").read_text())
    scheduled["id"] = str(uuid.uuid4())
    sync_name = stage.describe()["functions"]["SyncFunction"]
    racers = [
        lambda: sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(scheduled)),
        lambda: requests.post(
            f"{stage.urls['api']}/sync", headers={"x-api-key": stage.api_key}, timeout=60
        ),
        lambda: redrive_queue(
            SqsQueue(sqs, dlq, wait_s=0), SqsRequeue(sqs, queue), sync_name, max_messages=5
        ),
    ]
    try:
        # when the schedule, a person and a redrive ask for a sync at the same moment
        with ThreadPoolExecutor(max_workers=len(racers)) as pool:
            for future in [pool.submit(racer) for racer in racers]:
                future.result()
        poll(lambda: _settled(stage, dynamodb, sqs), timeout=300, what="the race did not drain")
    finally:
        set_faults(stage, {"rules": [], "token_rate_limit_per_minute": 0})
    # then every request was carried, and no two runs ever overlapped in time
    new = sorted(set(runs(dynamodb, table)) - before)
    assert new
    spans = [
        (item["started_at"]["S"], item["finished_at"]["S"])
        for item in (_run_item(dynamodb, table, run_id) for run_id in new)
    ]
    spans.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert _depth(sqs, dlq) == 0
