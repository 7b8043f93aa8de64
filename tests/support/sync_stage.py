"""Helpers of the sync suites on the local stage: run records, items, faults, configuration."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient

    from localstage.stage import LocalStage
    from localstage.vanta_data import Revision

__all__ = ["items", "poll", "runs", "set_env", "set_faults", "set_revision"]


def set_env(client: Any, timeout: int | None = None, **values: str) -> None:
    config = client.get_function_configuration(FunctionName="SyncFunction")
    variables = dict(config["Environment"]["Variables"]) | values
    extra = {} if timeout is None else {"Timeout": timeout}
    client.update_function_configuration(
        FunctionName="SyncFunction", Environment={"Variables": variables}, **extra
    )
    client.get_waiter("function_updated_v2").wait(FunctionName="SyncFunction")


def runs(dynamodb: DynamoDBClient, table: str) -> dict[str, str]:
    response = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "RUN"}},
        ConsistentRead=True,
    )
    return {item["sk"]["S"]: item["status"]["S"] for item in response["Items"]}


def items(dynamodb: DynamoDBClient, table: str, pk: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for page in dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    ):
        for item in page["Items"]:
            found[item["sk"]["S"]] = json.loads(item["data"]["S"])
    return found


def poll[T](probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Bounded polling for an asynchronous invocation's effect."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def set_faults(stage: LocalStage, body: dict[str, Any]) -> None:
    response = requests.post(f"{stage.urls['vanta']}/_admin/faults", json=body, timeout=10)
    assert response.status_code == 200, response.text


def set_revision(stage: LocalStage, revision: Revision) -> None:
    """Change the stand-in's data set to a revision of it (what a later run must converge to)."""
    response = requests.post(
        f"{stage.urls['vanta']}/_admin/dataset",
        json={"revision": revision.to_dict()},
        timeout=10,
    )
    assert response.status_code == 200, response.text
