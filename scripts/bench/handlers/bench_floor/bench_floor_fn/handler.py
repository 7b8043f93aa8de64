"""Floor handler: import boto3, one DynamoDB client at init, one GetItem per request."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

_TABLE = os.environ["TABLE_NAME"]
_KEY: Any = {"pk": {"S": "STATS"}, "sk": {"S": "LATEST"}}
_client = boto3.client("dynamodb")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the latest snapshot item as an API Gateway proxy response."""
    item = _client.get_item(TableName=_TABLE, Key=_KEY).get("Item")
    if item is None:
        return {"statusCode": 503, "headers": {}, "body": '{"message":"no snapshot"}'}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(item),
    }
