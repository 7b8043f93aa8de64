"""CloudWatch Logs subscription deliveries on the local stage: the awslogs event, its filter."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from typing import TYPE_CHECKING, Any

from lambdakit.emf import looks_like_emf

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["awslogs_event", "matches_emf_filter"]


def matches_emf_filter(line: str) -> bool:
    """What the template's subscription filter pattern keeps: the functions' EMF lines."""
    return looks_like_emf(line)


def awslogs_event(
    log_group: str,
    messages: Sequence[str],
    *,
    log_stream: str = "local/[$LATEST]stage",
    filter_name: str = "emf",
    owner: str = "123456789012",
    timestamps_ms: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The event Lambda receives from a subscription: ``awslogs.data`` is base64 of gzip of JSON.

    The JSON's shape is CloudWatch Logs' (User Guide, "Using CloudWatch Logs subscription
    filters"): messageType DATA_MESSAGE, owner, logGroup, logStream, subscriptionFilters and
    logEvents of id, timestamp (epoch ms) and message.
    """
    stamps = list(timestamps_ms) if timestamps_ms is not None else [0] * len(messages)
    body = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [
            {"id": uuid.uuid4().hex, "timestamp": stamp, "message": message}
            for stamp, message in zip(stamps, messages, strict=True)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()
    return {"awslogs": {"data": data}}
