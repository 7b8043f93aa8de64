"""Naive handler: boto3 resource, Powertools Logger, Metrics, Tracer and Event Handler at import."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext  # noqa: TC002 - as usually written

logger = Logger()
metrics = Metrics()
tracer = Tracer()
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
app = APIGatewayRestResolver()


@app.get("/stats")
@tracer.capture_method
def stats() -> dict[str, Any]:
    """The latest snapshot item."""
    item = table.get_item(Key={"pk": "STATS", "sk": "LATEST"}).get("Item")
    return {"item": item}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route one API Gateway REST proxy event."""
    return app.resolve(event, context)
