"""AWS adapters of the forwarder: its SQS dead-letter queue and the API key secret."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SqsDeadLetters", "read_api_key"]


class SqsDeadLetters:
    """``forwarder_fn.forward.DeadLetters`` over an SQS queue."""

    def __init__(self, client: Any, queue_url: str, *, visibility_timeout: int = 300) -> None:
        """``client``: botocore SQS client; replayed messages stay hidden ``visibility_timeout``."""
        self._client = client
        self._url = queue_url
        self._visibility = visibility_timeout

    def send(self, body: str) -> None:
        """Keep one message (SQS bodies hold up to 256 KiB: the forwarder sends parts below)."""
        self._client.send_message(QueueUrl=self._url, MessageBody=body)

    def receive(self, max_messages: int) -> list[tuple[str, str]]:
        """Up to ``max_messages`` messages, in batches of at most 10 (SQS's limit)."""
        found: list[tuple[str, str]] = []
        while len(found) < max_messages:
            answer = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=min(10, max_messages - len(found)),
                VisibilityTimeout=self._visibility,
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            found += [(m["ReceiptHandle"], m["Body"]) for m in messages]
        return found

    def delete(self, receipt: str) -> None:
        """Forget a handled message."""
        self._client.delete_message(QueueUrl=self._url, ReceiptHandle=receipt)


def read_api_key(client: Any, secret_arn: str) -> str:
    """The API key from the secret: a plain string, or JSON with an ``api_key`` field."""
    text = str(client.get_secret_value(SecretId=secret_arn)["SecretString"]).strip()
    if text.startswith("{"):
        value = json.loads(text).get("api_key")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"secret {secret_arn} holds JSON without an api_key string")
        return value.strip()
    if not text:
        raise ValueError(f"secret {secret_arn} is empty")
    return text
