"""The SyncRequests queue: every producer sends the sync's trigger here as a message body."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from lambdakit.clients import get_client
from lambdakit.lazy import lazy_import
from vulnstats.errors import VulnStatsError
from vulnstats.triggers import continuation_event

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import botocore.exceptions
else:
    botocore = lazy_import("botocore.exceptions")

__all__ = ["MAX_DELAY_SECONDS", "QueueError", "SyncQueue", "continuation_starter"]

# SQS's limits (SendMessage DelaySeconds, ChangeMessageVisibility VisibilityTimeout).
MAX_DELAY_SECONDS: Final = 900
MAX_VISIBILITY_SECONDS: Final = 43200


class QueueError(VulnStatsError):
    """SQS refused a call; the message names the queue, the operation and why."""


class SyncQueue:
    """Sends triggers to one queue and moves the visibility of a message being handled."""

    __slots__ = ("_client", "url")

    def __init__(self, url: str, *, client: Any = None) -> None:
        """``url`` is the queue URL; ``client`` an SQS client, or None for the shared one."""
        self.url = url
        self._client = client

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = get_client("sqs")
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._sqs(), operation)(QueueUrl=self.url, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise QueueError(f"{operation} on {self.url}: {type(exc).__name__}: {exc}") from exc

    def send(self, event: Mapping[str, Any], *, delay_seconds: float = 0) -> str:
        """Queue one trigger, visible after ``delay_seconds`` (capped at SQS's 900); its id."""
        delay = max(0, min(MAX_DELAY_SECONDS, int(delay_seconds + 0.999)))
        answer = self._call("send_message", MessageBody=json.dumps(event), DelaySeconds=delay)
        return str(answer.get("MessageId", ""))

    def hide(self, receipt_handle: str, seconds: float) -> None:
        """Keep a received message invisible for ``seconds`` from now (SQS caps it at 12 h)."""
        timeout = max(0, min(MAX_VISIBILITY_SECONDS, int(seconds + 0.999)))
        self._call(
            "change_message_visibility", ReceiptHandle=receipt_handle, VisibilityTimeout=timeout
        )


def continuation_starter(send: Callable[..., str]) -> Callable[[str, int], None]:
    """The sync engine's ``start_continuation``: a ``continue`` message for run and sequence."""

    def start(run_id: str, sequence: int) -> None:
        send(continuation_event(run_id, sequence))

    return start
