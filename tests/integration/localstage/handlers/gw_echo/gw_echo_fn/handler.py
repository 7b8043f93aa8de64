"""Handlers that answer API Gateway proxy events in every way a front must cope with."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Send the whole proxy event back as the JSON body."""
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Echo": "yes"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"event": event, "request_id": context.aws_request_id}),
        "isBase64Encoded": False,
    }


def binary(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the request body unchanged, as binary."""
    body = event["body"] or ""
    if not event["isBase64Encoded"]:
        body = base64.b64encode(body.encode()).decode()
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/octet-stream"},
        "body": body,
        "isBase64Encoded": True,
    }


class ReportFailedError(Exception):
    """A failure inside the function."""


def failing(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise: the front must answer 502."""
    raise ReportFailedError("report could not be built")


def invalid(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer something that is not a proxy response (no statusCode)."""
    return {"body": "no status code here"}


def hold(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stay busy until the file named by ?release= exists (or the deadline nears)."""
    release = Path((event.get("queryStringParameters") or {})["release"])
    while not release.exists() and context.get_remaining_time_in_millis() > 200:
        time.sleep(0.01)
    return {"statusCode": 200, "body": "released"}


def record(event: dict[str, Any], context: Any) -> None:
    """Write the event to GW_RECORD_DIR, one file per invocation (the tests' side channel)."""
    target = Path(os.environ["GW_RECORD_DIR"]) / f"{context.aws_request_id}.json"
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(event), encoding="utf-8")
    partial.rename(target)  # readers never see a half-written file
