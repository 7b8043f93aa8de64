"""Inspect and redrive the sync function's dead-letter queue, on the local stage or on AWS."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from locate import LocateError, find_stage, samconfig_environment, stack_outputs
from vulnstats.triggers import SUCCESS_STATUSES, InvalidTriggerError, parse_trigger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DlqError",
    "Inspection",
    "Invocation",
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

Source = Literal["lambda", "eventbridge", "sns", "unknown"]


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


@dataclass(frozen=True, slots=True)
class Invocation:
    """A synchronous invocation's answer: Lambda's FunctionError (None on success) and payload."""

    function_error: str | None
    payload: bytes


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


class SyncInvoker(Protocol):
    """The sync function, invoked synchronously (LambdaInvoker is the real one)."""

    def invoke(self, payload: bytes) -> Invocation:
        """Invoke with RequestResponse and return the answer."""
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


def _source(attributes: Mapping[str, str], body: Any) -> Source:
    if "RequestID" in attributes or "ErrorCode" in attributes:
        return "lambda"  # the function's own DeadLetterConfig (Lambda's async DLQ attributes)
    if "TARGET_ARN" in attributes or "RULE_ARN" in attributes:
        return "eventbridge"  # a schedule rule could not deliver to its target
    if isinstance(body, dict) and body.get("Type") == "Notification" and "TopicArn" in body:
        return "sns"  # an alarm e-mail the topic could not deliver
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


def describe(message: QueueMessage, sync_function_name: str) -> MessageReport:
    """Read a dead-lettered message: origin, failure reason, event, and whether to redrive it.

    Only events meant for the sync function are redriven: the queue also receives the warmer's
    undeliverable schedule events (pointless to replay) and undeliverable alarm e-mails.
    """
    attributes = message.attributes
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body
    source = _source(attributes, body)
    event, is_sync_event = _summary(body)
    because: str | None = None
    if source == "eventbridge":
        target = attributes.get("TARGET_ARN", "")
        if target.split(":function:")[-1].split(":")[0] != sync_function_name:
            because = f"sent by a schedule for {target or 'an unknown target'}, not the sync"
    elif source == "sns":
        because = "an undeliverable alarm notification: read it, then delete it by hand"
    if because is None and not is_sync_event:
        because = "not a sync function event"
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


def inspect_queue(queue: Queue, sync_function_name: str, *, max_messages: int) -> Inspection:
    """List up to max_messages messages with their failure reason; every one stays in the queue."""
    if max_messages < 1:
        raise DlqError(f"--max-messages: expected at least 1, got {max_messages}")
    messages, limit_reached = _receive_all(queue, max_messages, INSPECT_VISIBILITY_S)
    try:
        return Inspection([describe(m, sync_function_name) for m in messages], limit_reached)
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


def judge(invocation: Invocation) -> tuple[bool, str]:
    """Whether a redriven run succeeded (no FunctionError; run completed or continuing), and why.

    `refused` (another run holds the lock), `failed` (recorded, resumes on the next start),
    `stale` (a continuation the run no longer needs) and `duplicate` all leave the message.
    """
    if invocation.function_error is not None:
        text = invocation.payload.decode(errors="replace")[:300]
        return False, f"function error ({invocation.function_error}): {text}"
    try:
        answer: Any = json.loads(invocation.payload or b"null")
    except ValueError:
        return False, f"answer is not JSON: {invocation.payload[:120]!r}"
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
        return False, f"answer has no status: {str(answer)[:120]}"
    status, run_id = answer["status"], answer.get("run_id")
    message = str(answer.get("message") or "")
    if status in SUCCESS_STATUSES:
        return True, f"run {run_id} {status}"
    return False, f"run {run_id} {status}: {message}".strip()


def redrive_queue(
    queue: Queue,
    invoker: SyncInvoker,
    sync_function_name: str,
    *,
    max_messages: int,
    dry_run: bool = False,
    on_outcome: Callable[[RedriveOutcome], None] | None = None,
) -> RedriveReport:
    """Re-submit each sync event to the sync function; delete a message only once its run succeeded.

    Messages are taken one at a time and stay hidden while their run lasts; failed and skipped
    ones are made visible again at the end, so one redrive never handles a message twice.
    """
    if max_messages < 1:
        raise DlqError(f"--max-messages: expected at least 1, got {max_messages}")
    if dry_run:
        inspection = inspect_queue(queue, sync_function_name, max_messages=max_messages)
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
                outcome = _redrive_one(queue, invoker, message, sync_function_name)
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
    queue: Queue, invoker: SyncInvoker, message: QueueMessage, sync_function_name: str
) -> RedriveOutcome:
    report = describe(message, sync_function_name)
    if not report.redrivable:
        return RedriveOutcome(report, "skipped", str(report.not_redrivable_because))
    try:
        invocation = invoker.invoke(message.body.encode())
    except DlqError as exc:
        return RedriveOutcome(report, "failed", f"invoke failed: {exc}")
    succeeded, detail = judge(invocation)
    if not succeeded:
        return RedriveOutcome(report, "failed", detail)
    try:
        queue.delete(message)
    except DlqError as exc:
        # Redriving it again later is safe: a replayed event finds its run already done.
        return RedriveOutcome(report, "failed", str(exc))
    return RedriveOutcome(report, "redriven", detail)


# ------------------------------------------------------------------ adapters (boto3)
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
                f"run succeeded but {message.message_id} was not deleted: {exc}"
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


class LambdaInvoker:
    """SyncInvoker over boto3's Lambda client (RequestResponse)."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._name = function_name

    def invoke(self, payload: bytes) -> Invocation:
        """Invoke the sync function synchronously."""
        try:
            answer = self._client.invoke(
                FunctionName=self._name, InvocationType="RequestResponse", Payload=payload
            )
        except _client_error_types() as exc:
            raise DlqError(f"cannot invoke {self._name}: {exc}") from exc
        return Invocation(answer.get("FunctionError"), answer["Payload"].read())


# ------------------------------------------------------------------ finding the stage
@dataclass(frozen=True, slots=True)
class Target:
    """Where the queue and the sync function are, and clients to reach them."""

    where: str
    queue_url: str
    sync_function_name: str
    sqs: Any
    lambda_client: Any


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
    from botocore.config import Config  # noqa: PLC0415

    session = info.session()
    invoke_config = Config(read_timeout=960, retries={"mode": "standard", "max_attempts": 1})
    return Target(
        where=info.which(),
        queue_url=info.resource("DeadLetterQueue"),
        sync_function_name=info.function("SyncFunction"),
        sqs=session.client("sqs", endpoint_url=info.aws_endpoint_url),
        lambda_client=session.client(
            "lambda", endpoint_url=info.invoke_endpoint_url, config=invoke_config
        ),
    )


def aws_target(stack: str, region: str | None, profile: str | None) -> Target:
    """A deployed stack: its DeadLetterQueueUrl and SyncFunctionName outputs."""
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except _client_error_types() as exc:
        raise DlqError(f"cannot describe stack {stack}: {exc}") from exc
    outputs = stack_outputs(session, stack)
    missing = [k for k in ("DeadLetterQueueUrl", "SyncFunctionName") if k not in outputs]
    if missing:
        raise DlqError(f"stack {stack} has no output {', '.join(missing)}: deploy this template")
    invoke_config = Config(read_timeout=960, retries={"mode": "standard", "max_attempts": 1})
    return Target(
        where=f"stack {stack} ({session.region_name})",
        queue_url=outputs["DeadLetterQueueUrl"],
        sync_function_name=outputs["SyncFunctionName"],
        sqs=session.client("sqs"),
        lambda_client=session.client("lambda", config=invoke_config),
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
    inspection = inspect_queue(queue, target.sync_function_name, max_messages=args.max_messages)
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
    invoker = LambdaInvoker(target.lambda_client, target.sync_function_name)
    mode = " (dry run: nothing is invoked or deleted)" if args.dry_run else ""
    print(f"redriving the dead-letter queue of {target.where} to {target.sync_function_name}{mode}")

    def show(outcome: RedriveOutcome) -> None:
        print(_line(outcome.report))
        print(f"    result:  {outcome.result}: {outcome.detail}", flush=True)

    report = redrive_queue(
        queue,
        invoker,
        target.sync_function_name,
        max_messages=args.max_messages,
        dry_run=args.dry_run,
        on_outcome=show,
    )
    counts = ", ".join(
        f"{report.count(r)} {r}" for r in ("redriven", "failed", "skipped", "dry-run")
    )
    print(f"done: {counts}; failed and skipped messages stay in the queue")
    if report.limit_reached:
        print(f"(stopped at --max-messages {args.max_messages}; there may be more)")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ops.dlq inspect|redrive`; exit 1 when a redrive failed, 2 on a setup error."""
    parser = argparse.ArgumentParser(prog="dlq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="list messages and why they failed; deletes none")
    redrive = commands.add_parser(
        "redrive", help="re-submit sync events; delete each only after its run succeeded"
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
