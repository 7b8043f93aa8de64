"""DLQ tooling on the local stage: a request dead-lettered by the queue is inspected, redriven."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from stage_support import invoke_client, isolated_stage

from localstage.aws import local_client
from localstage.vanta_data import Dataset
from ops.dlq import SqsQueue, SqsRequeue, inspect_queue, main, redrive_queue

if TYPE_CHECKING:
    from collections.abc import Iterator

    from localstage.stage import LocalStage
    from ops.dlq import MessageReport

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dlq-stage")]

REPO = Path(__file__).resolve().parents[3]
DATA = Dataset(
    seed=41,
    vulnerability_count=40,
    asset_count=10,
    remediation_count=10,
    now=datetime.now(UTC).replace(microsecond=0),
)
SYNC = "SyncFunction"
MISSING_TABLE = "no-such-table"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    with isolated_stage(
        tmp_path_factory.mktemp("dlq-stage"), name="dlq-stage", dataset=DATA
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(stage: LocalStage) -> Any:
    return invoke_client(stage)


@pytest.fixture
def queue(stage: LocalStage) -> Iterator[SqsQueue]:
    sqs = local_client("sqs", stage.urls["aws"], stage.config.region)
    url = stage.physical_ids["DeadLetterQueue"]
    _drain(sqs, url)
    yield SqsQueue(sqs, url, wait_s=0)
    _drain(sqs, url)


def _drain(sqs: Any, url: str) -> None:
    """Delete whatever a previous test left (PurgeQueue may run only once a minute)."""
    while True:
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not found:
            return
        for message in found:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _set_table(client: Any, table: str) -> None:
    config = client.get_function_configuration(FunctionName=SYNC)
    # A failed request comes back after 1 s (not 60), so it is dead-lettered within seconds.
    variables = dict(config["Environment"]["Variables"]) | {
        "TABLE_NAME": table,
        "SYNC_ERROR_RETRY_SECONDS": "1",
    }
    client.update_function_configuration(FunctionName=SYNC, Environment={"Variables": variables})
    client.get_waiter("function_updated_v2").wait(FunctionName=SYNC)


@pytest.fixture
def broken_sync(stage: LocalStage, lambda_client: Any) -> Iterator[str]:
    """The sync pointed at a table that does not exist (so it raises); restored afterwards."""
    table = stage.physical_ids["StateTable"]
    _set_table(lambda_client, MISSING_TABLE)
    yield table
    _set_table(lambda_client, table)


def _scheduled_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((REPO / "events" / "sync_scheduled.json").read_text())
    event["id"] = str(uuid.uuid4())
    return event


def _requeue(stage: LocalStage) -> SqsRequeue:
    sqs = local_client("sqs", stage.urls["aws"], stage.config.region)
    return SqsRequeue(sqs, stage.physical_ids["SyncRequestsQueue"])


def _fail_into_dlq(client: Any, queue: SqsQueue, stage: LocalStage) -> tuple[str, MessageReport]:
    """Queue one scheduled event; wait (bounded) until the queue dead-letters it (5 receives)."""
    del client  # the broken_sync fixture did the breaking
    event = _scheduled_event()
    _requeue(stage).send(json.dumps(event))
    sync_name = stage.describe()["functions"][SYNC]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        seen = inspect_queue(queue, sync_name, max_messages=10).messages
        if seen:
            assert len(seen) == 1
            return event["id"], seen[0]
        time.sleep(0.2)
    raise AssertionError("the failed event did not reach the dead-letter queue within 90 s")


def test_a_failed_event_is_inspected_then_redriven_and_deleted_once_the_fault_is_gone(
    stage: LocalStage, lambda_client: Any, queue: SqsQueue, broken_sync: str
) -> None:
    sync_name = stage.describe()["functions"][SYNC]
    # given a scheduled event that failed maxReceiveCount times into the DLQ
    event_id, report = _fail_into_dlq(lambda_client, queue, stage)
    # then inspect names where it came from and the event, and leaves the message in place
    assert report.source == "queue"
    assert report.receive_count >= 1
    assert event_id in report.event
    assert report.redrivable
    again = inspect_queue(queue, sync_name, max_messages=10).messages
    assert [m.message_id for m in again] == [report.message_id]
    # when the fault is removed and the queue redriven
    _set_table(lambda_client, broken_sync)
    outcome = redrive_queue(queue, _requeue(stage), sync_name, max_messages=10)
    # then the request is back on the SyncRequests queue, gone from the DLQ, and its run done
    assert [o.result for o in outcome.outcomes] == ["redriven"], outcome.outcomes
    assert inspect_queue(queue, sync_name, max_messages=10).messages == []
    dynamodb = local_client("dynamodb", stage.urls["aws"], stage.config.region)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = dynamodb.query(
            TableName=broken_sync,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "RUN"}},
            ConsistentRead=True,
        )["Items"]
        if any(item["status"]["S"] == "succeeded" for item in found):
            return
        time.sleep(0.2)
    raise AssertionError("the redriven request did not complete a run within 60 s")


def test_a_request_redriven_while_the_cause_remains_returns_to_the_dlq(
    stage: LocalStage, lambda_client: Any, queue: SqsQueue, broken_sync: str
) -> None:
    sync_name = stage.describe()["functions"][SYNC]
    # given a dead-lettered event whose cause is still there
    event_id, _ = _fail_into_dlq(lambda_client, queue, stage)
    # when redriven
    outcome = redrive_queue(queue, _requeue(stage), sync_name, max_messages=10)
    assert [o.result for o in outcome.outcomes] == ["redriven"]
    # then the queue's own redrive policy brings it back after maxReceiveCount failures
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = inspect_queue(queue, sync_name, max_messages=10).messages
        if left:
            assert [event_id in m.event for m in left] == [True]
            return
        time.sleep(0.2)
    raise AssertionError("the redriven request did not come back to the DLQ within 90 s")


def test_the_command_line_finds_the_stage_from_its_state_file(
    stage: LocalStage,
    lambda_client: Any,
    queue: SqsQueue,
    broken_sync: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a dead-lettered event on a stage that wrote its state file
    event_id, _ = _fail_into_dlq(lambda_client, queue, stage)
    state_file = str(stage.config.state_file)
    # when `make dlq-inspect` and `make dlq-redrive DRY_RUN=1` run (what they call)
    inspected = main(["inspect", "--state-file", state_file])
    dry = main(["redrive", "--dry-run", "--state-file", state_file])
    # then both succeed, name the event, and the message is still there
    out = capsys.readouterr().out
    assert (inspected, dry) == (0, 0)
    assert event_id in out
    assert "nothing was deleted" in out
    assert "1 dry-run" in out
    assert len(inspect_queue(queue, "x", max_messages=10).messages) == 1


def test_the_command_line_explains_a_missing_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["inspect", "--state-file", str(tmp_path / "absent.json")])
    assert code == 2
    assert "no local stage is running" in capsys.readouterr().err
