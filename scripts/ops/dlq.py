"""Inspect and redrive the dead-letter queue of the sync requests, on the local stage or on AWS.

A redrive puts each sync request back on the SyncRequests queue, where the sync function's
event source takes it again (a request that fails again comes back here after maxReceiveCount).
On AWS, when every message is a sync request, SQS's own redrive (StartMessageMoveTask) moves them;
otherwise, and on the local stage (moto has no message move tasks), the tool moves each sync
request itself and leaves the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from locate import LocateError, find_stage, samconfig_environment, stack_outputs
from vulnstats.triggers import InvalidTriggerError, parse_trigger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DlqError",
    "Inspection",
    "MessageReport",
    "QueueMessage",
    "RedriveOutcome",
    "RedriveReport",
    "describe",
    "inspect_queue",
    "main",
    "redrive_queue",
]

# Inspecting hides a message only briefly and puts it back at once; redriving hides it for longer
# than one sync invocation may last (900 s), so nobody else redrives it while it runs.
INSPECT_VISIBILITY_S: Final = 30
REDRIVE_VISIBILITY_S: Final = 960
RECEIVE_WAIT_S: Final = 1
_MAX_BATCH: Final = 10
_MAX_EMPTY_RECEIVES: Final = 2

Source = Literal["queue", "lambda", "eventbridge", "sns", "unknown"]


class DlqError(Exception):
    """The queue or the function could not be found or reached; the message says what to fix."""


# ------------------------------------------------------------------ values and ports
@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received message: what SQS returned, attributes flattened to strings."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    sent_at: datetime | None = None
    receive_count: int = 0


class Queue(Protocol):
    """The dead-letter queue (SqsQueue is the real one)."""

    def receive(self, max_messages: int, visibility_timeout_s: int) -> list[QueueMessage]:
        """Up to max_messages messages, hidden from other readers for visibility_timeout_s."""
        ...

    def release(self, message: QueueMessage) -> None:
        """Make a received message visible again at once (visibility timeout 0)."""
        ...

    def delete(self, message: QueueMessage) -> None:
        """Delete a received message for good."""
        ...


class Requeue(Protocol):
    """The SyncRequests queue a redriven request goes back to (SqsRequeue is the real one)."""

    def send(self, body: str) -> None:
        """Send one message body."""
        ...


# ------------------------------------------------------------------ reading a message
@dataclass(frozen=True, slots=True)
class MessageReport:
    """What a dead-lettered message is, why it failed, and whether it can be redriven."""

    message_id: str
    source: Source
    request_id: str | None
    error_code: str | None
    error_message: str | None
    event: str
    redrivable: bool
    not_redrivable_because: str | None = None
    sent_at: datetime | None = None
    receive_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for --json)."""
        return {
            "message_id": self.message_id,
            "source": self.source,
            "request_id": self.request_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "event": self.event,
            "redrivable": self.redrivable,
            "not_redrivable_because": self.not_redrivable_because,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "receive_count": self.receive_count,
        }


def _source(attributes: Mapping[str, str], body: Any, is_sync_event: bool) -> Source:
    if "RequestID" in attributes or "ErrorCode" in attributes:
        return "lambda"  # an async invocation's dead letter (stacks from before the queue)
    if "TARGET_ARN" in attributes or "RULE_ARN" in attributes:
        return "eventbridge"  # a schedule rule could not deliver to its target
    if isinstance(body, dict) and body.get("Type") == "Notification" and "TopicArn" in body:
        return "sns"  # an alarm e-mail the topic could not deliver
    if is_sync_event:
        return "queue"  # the SyncRequests queue's redrive: failed maxReceiveCount times
    return "unknown"


def _summary(body: Any) -> tuple[str, bool]:
    """A one-line description of the event, and whether it is a sync function event."""
    if not isinstance(body, dict):
        return f"not a JSON object: {str(body)[:80]!r}", False
    try:
        return parse_trigger(body).describe(), True
    except InvalidTriggerError:
        pass
    if body.get("Type") == "Notification":
        return f"alarm notification: {body.get('Subject', '')!r}", False
    keys = ", ".join(sorted(str(k) for k in body)[:6])
    return f"unrecognised event with keys {keys or 'none'}", False


def describe(
    message: QueueMessage, sync_function_name: str, requests_queue_arn: str = ""
) -> MessageReport:
    """Read a dead-lettered message: origin, failure reason, event, and whether to redrive it.

    Only sync requests are redriven: the queue also receives the warmer's undeliverable
    schedule events (pointless to replay), undeliverable alarm e-mails and messages that are not
    triggers at all (the sync function logged why: "message is not a sync trigger").
    """
    attributes = message.attributes
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body
    event, is_sync_event = _summary(body)
    source = _source(attributes, body, is_sync_event)
    because: str | None = None
    if source == "eventbridge":
        target = attributes.get("TARGET_ARN", "")
        to_sync = target.split(":function:")[-1].split(":")[0] == sync_function_name
        if not to_sync and target != requests_queue_arn:
            because = f"sent by a schedule for {target or 'an unknown target'}, not the sync"
    elif source == "sns":
        because = "an undeliverable alarm notification: read it, then delete it by hand"
    if because is None and not is_sync_event:
        because = "not a sync request (the sync log says why: 'message is not a sync trigger')"
    if source == "lambda":
        code, text = attributes.get("ErrorCode"), attributes.get("ErrorMessage")
    else:
        code, text = attributes.get("ERROR_CODE"), attributes.get("ERROR_MESSAGE")
    return MessageReport(
        message_id=message.message_id,
        source=source,
        request_id=attributes.get("RequestID"),
        error_code=code,
        error_message=text,
        event=event,
        redrivable=because is None,
        not_redrivable_because=because,
        sent_at=message.sent_at,
        receive_count=message.receive_count,
    )


# ------------------------------------------------------------------ inspect
@dataclass(frozen=True, slots=True)
class Inspection:
    """The messages seen, in the order received; none was deleted."""

    messages: list[MessageReport]
    limit_reached: bool


def _receive_all(
    queue: Queue, max_messages: int, visibility_s: int, *, batch: int = _MAX_BATCH
) -> tuple[list[QueueMessage], bool]:
    """Receive distinct messages until the queue looks empty or max_messages were seen."""
    seen: dict[str, QueueMessage] = {}
    empty = 0
    while len(seen) < max_messages and empty < _MAX_EMPTY_RECEIVES:
        received = queue.receive(min(batch, max_messages - len(seen)), visibility_s)
        fresh = [m for m in received if m.message_id not in seen]
        if not fresh:
            empty += 1  # short polls can miss messages: one more look before calling it empty
            continue
        empty = 0
        for message in fresh:
            seen[message.message_id] = message
    return list(seen.values()), len(seen) >= max_messages


def inspect_queue(
    queue: Queue, sync_function_name: str, *, max_messages: int, requests_queue_arn: str = ""
) -> Inspection:
    """List up to max_messages messages with their failure reason; every one stays in the queue."""
    if max_messages < 1:
        raise DlqError(f"--max-messages: expected at least 1, got {max_messages}")
    messages, limit_reached = _receive_all(queue, max_messages, INSPECT_VISIBILITY_S)
    try:
        return Inspection(
            [describe(m, sync_function_name, requests_queue_arn) for m in messages],
            limit_reached,
        )
    finally:
        for message in messages:
            queue.release(message)


# ------------------------------------------------------------------ redrive
RedriveResult = Literal["redriven", "failed", "skipped", "dry-run"]


@dataclass(frozen=True, slots=True)
class RedriveOutcome:
    """What happened to one message; only `redriven` ones were deleted."""

    report: MessageReport
    result: RedriveResult
    detail: str


@dataclass(frozen=True, slots=True)
class RedriveReport:
    """Every message handled by one redrive, in order."""

    outcomes: list[RedriveOutcome]
    limit_reached: bool

    def count(self, result: RedriveResult) -> int:
        """How many messages ended with this result."""
        return sum(1 for outcome in self.outcomes if outcome.result == result)

    @property
    def ok(self) -> bool:
        """True when no message failed its redrive."""
        return self.count("failed") == 0


def redrive_queue(
    queue: Queue,
    requeue: Requeue,
    sync_function_name: str,
    *,
    max_messages: int,
    dry_run: bool = False,
    on_outcome: Callable[[RedriveOutcome], None] | None = None,
    requests_queue_arn: str = "",
) -> RedriveReport:
    """Put each sync request back on the SyncRequests queue, then delete it here.

    Messages are taken one at a time; skipped ones are made visible again at the end, so one
    redrive never handles a message twice. A request that fails again returns to this queue
    through the SyncRequests queue's own redrive policy.
    """
    if max_messages < 1:
        raise DlqError(f"--max-messages: expected at least 1, got {max_messages}")
    if dry_run:
        inspection = inspect_queue(
            queue,
            sync_function_name,
            max_messages=max_messages,
            requests_queue_arn=requests_queue_arn,
        )
        outcomes = [
            RedriveOutcome(
                r,
                "dry-run" if r.redrivable else "skipped",
                "would be redriven" if r.redrivable else str(r.not_redrivable_because),
            )
            for r in inspection.messages
        ]
        for outcome in outcomes:
            if on_outcome is not None:
                on_outcome(outcome)
        return RedriveReport(outcomes, inspection.limit_reached)
    outcomes = []
    kept: list[QueueMessage] = []
    seen: set[str] = set()
    empty = 0
    try:
        while len(seen) < max_messages and empty < _MAX_EMPTY_RECEIVES:
            received = [
                m for m in queue.receive(1, REDRIVE_VISIBILITY_S) if m.message_id not in seen
            ]
            if not received:
                empty += 1
                continue
            empty = 0
            for message in received:
                seen.add(message.message_id)
                report = describe(message, sync_function_name, requests_queue_arn)
                outcome = _redrive_one(queue, requeue, message, report)
                if outcome.result != "redriven":
                    kept.append(message)
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
    finally:
        for message in kept:
            queue.release(message)
    return RedriveReport(outcomes, len(seen) >= max_messages)


def _redrive_one(
    queue: Queue, requeue: Requeue, message: QueueMessage, report: MessageReport
) -> RedriveOutcome:
    if not report.redrivable:
        return RedriveOutcome(report, "skipped", str(report.not_redrivable_because))
    try:
        requeue.send(message.body)
    except DlqError as exc:
        return RedriveOutcome(report, "failed", str(exc))
    try:
        queue.delete(message)
    except DlqError as exc:
        # Queued twice is harmless: a replayed request finds its run live or done (coalesced).
        return RedriveOutcome(report, "failed", str(exc))
    return RedriveOutcome(report, "redriven", "back on the SyncRequests queue")


def _client_error_types() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    return (BotoCoreError, ClientError)


class SqsQueue:
    """Queue over boto3's SQS client."""

    def __init__(self, client: Any, url: str, *, wait_s: int = RECEIVE_WAIT_S) -> None:
        self._client = client
        self._url = url
        self._wait_s = wait_s

    def receive(self, max_messages: int, visibility_timeout_s: int) -> list[QueueMessage]:
        """ReceiveMessage with every attribute."""
        try:
            answer = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max_messages,
                VisibilityTimeout=visibility_timeout_s,
                WaitTimeSeconds=self._wait_s,
                MessageAttributeNames=["All"],
                AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            )
        except _client_error_types() as exc:
            raise DlqError(f"cannot read the queue {self._url}: {exc}") from exc
        return [_message(raw) for raw in answer.get("Messages", [])]

    def release(self, message: QueueMessage) -> None:
        """ChangeMessageVisibility to 0."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
            )
        except _client_error_types() as exc:
            # The message reappears by itself when its visibility timeout ends.
            print(f"warning: could not release {message.message_id}: {exc}", file=sys.stderr)

    def delete(self, message: QueueMessage) -> None:
        """DeleteMessage."""
        try:
            self._client.delete_message(QueueUrl=self._url, ReceiptHandle=message.receipt_handle)
        except _client_error_types() as exc:
            raise DlqError(
                f"{message.message_id} is back on the SyncRequests queue but was not deleted "
                f"here: {exc}"
            ) from exc


def _message(raw: Mapping[str, Any]) -> QueueMessage:
    attributes = {
        name: str(value.get("StringValue", value.get("BinaryValue", "")))
        for name, value in (raw.get("MessageAttributes") or {}).items()
    }
    system = raw.get("Attributes") or {}
    sent = system.get("SentTimestamp")
    return QueueMessage(
        message_id=str(raw["MessageId"]),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=str(raw.get("Body", "")),
        attributes=attributes,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        receive_count=int(system.get("ApproximateReceiveCount", 0)),
    )


class SqsRequeue:
    """Requeue over boto3's SQS client: SendMessage to the SyncRequests queue."""

    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self._url = url

    def send(self, body: str) -> None:
        """SendMessage with the dead-lettered body, unchanged."""
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=body)
        except _client_error_types() as exc:
            raise DlqError(f"cannot send to the SyncRequests queue {self._url}: {exc}") from exc


def start_move_task(client: Any, dlq_arn: str, requests_arn: str) -> str:
    """SQS's own redrive (StartMessageMoveTask) of the whole DLQ to the SyncRequests queue."""
    try:
        answer = client.start_message_move_task(SourceArn=dlq_arn, DestinationArn=requests_arn)
    except _client_error_types() as exc:
        raise DlqError(f"StartMessageMoveTask from {dlq_arn} failed: {exc}") from exc
    return str(answer.get("TaskHandle", ""))


# ------------------------------------------------------------------ finding the stage
@dataclass(frozen=True, slots=True)
class Target:
    """Where the queue and the sync function are, and clients to reach them."""

    where: str
    queue_url: str
    sync_function_name: str
    sqs: Any
    requests_queue_url: str
    requests_queue_arn: str
    dlq_arn: str
    on_aws: bool = False


def local_target(state_file: Path | None) -> Target:
    """The running local stage (`state_file`, else locate.find_stage's pick): moto's SQS and
    the Invoke API."""
    info = find_stage(state_file)
    if info is None:
        where = f"no live stage in {state_file}" if state_file else "none in .local/"
        raise DlqError(
            f"no local stage is running ({where}): start one with "
            "make local, or name a deployed stack with ENV=dev|prod (or --stack)"
        )
    session = info.session()
    queue_url = info.resource("DeadLetterQueue")
    requests_url = info.resource("SyncRequestsQueue")
    return Target(
        where=info.which(),
        queue_url=queue_url,
        sync_function_name=info.function("SyncFunction"),
        sqs=session.client("sqs", endpoint_url=info.aws_endpoint_url),
        requests_queue_url=requests_url,
        requests_queue_arn=_local_queue_arn(requests_url, info.region),
        dlq_arn=_local_queue_arn(queue_url, info.region),
    )


def _local_queue_arn(url: str, region: str) -> str:
    """The ARN of a moto queue from its URL (<endpoint>/<account>/<name>)."""
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def aws_target(stack: str, region: str | None, profile: str | None) -> Target:
    """A deployed stack: its dead-letter and SyncRequests queues and sync function outputs."""
    import boto3  # noqa: PLC0415

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except _client_error_types() as exc:
        raise DlqError(f"cannot describe stack {stack}: {exc}") from exc
    outputs = stack_outputs(session, stack)
    needed = (
        "DeadLetterQueueUrl",
        "DeadLetterQueueArn",
        "SyncRequestsQueueUrl",
        "SyncRequestsQueueArn",
        "SyncFunctionName",
    )
    missing = [k for k in needed if k not in outputs]
    if missing:
        raise DlqError(f"stack {stack} has no output {', '.join(missing)}: deploy this template")
    return Target(
        where=f"stack {stack} ({session.region_name})",
        queue_url=outputs["DeadLetterQueueUrl"],
        sync_function_name=outputs["SyncFunctionName"],
        sqs=session.client("sqs"),
        requests_queue_url=outputs["SyncRequestsQueueUrl"],
        requests_queue_arn=outputs["SyncRequestsQueueArn"],
        dlq_arn=outputs["DeadLetterQueueArn"],
        on_aws=True,
    )


# ------------------------------------------------------------------ command line
def _line(report: MessageReport) -> str:
    sent = report.sent_at.strftime("%Y-%m-%d %H:%M:%SZ") if report.sent_at else "?"
    reason = report.error_message or "-"
    code = f" [{report.error_code}]" if report.error_code else ""
    lines = [
        f"- {report.message_id}  sent {sent}  received {report.receive_count}x"
        f"  from {report.source}",
        f"    event:   {report.event}",
        f"    failure: {reason}{code}"
        + (f"  (request {report.request_id})" if report.request_id else ""),
    ]
    if not report.redrivable:
        lines.append(f"    redrive: no, {report.not_redrivable_because}")
    return "\n".join(lines)


def _target(args: argparse.Namespace) -> Target:
    if args.stack:
        return aws_target(args.stack, args.region, args.profile)
    if args.config_env:
        environment = samconfig_environment(args.config_env)
        return aws_target(environment.stack(), args.region or environment.region, args.profile)
    return local_target(args.state_file)


def _inspect(args: argparse.Namespace, target: Target) -> int:
    queue = SqsQueue(target.sqs, target.queue_url)
    inspection = inspect_queue(
        queue,
        target.sync_function_name,
        max_messages=args.max_messages,
        requests_queue_arn=target.requests_queue_arn,
    )
    if args.json:
        print(json.dumps([m.to_dict() for m in inspection.messages], indent=2))
        return 0
    print(f"dead-letter queue of {target.where}: {len(inspection.messages)} message(s) seen")
    for report in inspection.messages:
        print(_line(report))
    if inspection.limit_reached:
        print(f"(stopped at --max-messages {args.max_messages}; there may be more)")
    print("nothing was deleted")
    return 0


def _redrive(args: argparse.Namespace, target: Target) -> int:
    queue = SqsQueue(target.sqs, target.queue_url)
    mode = " (dry run: nothing is sent or deleted)" if args.dry_run else ""
    print(f"redriving the dead-letter queue of {target.where} to its SyncRequests queue{mode}")
    if target.on_aws and not args.dry_run and _move_task(args, target, queue):
        return 0

    def show(outcome: RedriveOutcome) -> None:
        print(_line(outcome.report))
        print(f"    result:  {outcome.result}: {outcome.detail}", flush=True)

    report = redrive_queue(
        queue,
        SqsRequeue(target.sqs, target.requests_queue_url),
        target.sync_function_name,
        max_messages=args.max_messages,
        dry_run=args.dry_run,
        on_outcome=show,
        requests_queue_arn=target.requests_queue_arn,
    )
    counts = ", ".join(
        f"{report.count(r)} {r}" for r in ("redriven", "failed", "skipped", "dry-run")
    )
    print(f"done: {counts}; failed and skipped messages stay in the queue")
    if report.limit_reached:
        print(f"(stopped at --max-messages {args.max_messages}; there may be more)")
    return 0 if report.ok else 1


def _move_task(args: argparse.Namespace, target: Target, queue: Queue) -> bool:
    """SQS's own redrive when every message is a sync request; False to move them one by one."""
    inspection = inspect_queue(
        queue,
        target.sync_function_name,
        max_messages=args.max_messages,
        requests_queue_arn=target.requests_queue_arn,
    )
    others = [m for m in inspection.messages if not m.redrivable]
    if others or inspection.limit_reached or not inspection.messages:
        if others:
            print(f"{len(others)} message(s) are not sync requests: moving the others one by one")
        return False
    handle = start_move_task(target.sqs, target.dlq_arn, target.requests_queue_arn)
    print(
        f"SQS moves {len(inspection.messages)} message(s) back (task {handle}); progress: "
        f"aws sqs list-message-move-tasks --source-arn {target.dlq_arn}"
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ops.dlq inspect|redrive`; exit 1 when a redrive failed, 2 on a setup error."""
    parser = argparse.ArgumentParser(prog="dlq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="list messages and why they failed; deletes none")
    redrive = commands.add_parser(
        "redrive", help="put sync requests back on the SyncRequests queue"
    )
    redrive.add_argument("--dry-run", action="store_true", help="list what would be redriven")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    for command in (inspect, redrive):
        command.add_argument("--max-messages", type=int, default=100, help="upper bound (100)")
        command.add_argument("--stack", help="a deployed stack name (default: the local stage)")
        command.add_argument("--config-env", help="a samconfig.toml environment, e.g. dev")
        command.add_argument("--region", help="AWS region of the stack")
        command.add_argument("--profile", help="AWS named profile")
        command.add_argument(
            "--state-file",
            type=Path,
            help="a running local stage's state file (default: the only one running, or the "
            "one on the default ports)",
        )
    args = parser.parse_args(argv)
    try:
        target = _target(args)
        return _inspect(args, target) if args.command == "inspect" else _redrive(args, target)
    except (DlqError, LocateError) as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
