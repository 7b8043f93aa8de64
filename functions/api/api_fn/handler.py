"""ApiFunction entry point: warming pings first, then Powertools routing of API Gateway events."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from api_fn.app import create_app, prime
from api_fn.settings import ApiSettings
from lambdakit.clients import get_client
from lambdakit.observability import (
    ObservabilitySettings,
    PowertoolsMetricSink,
    api_gateway_fields,
    capture_handler,
    create_logger,
    create_metrics,
    create_tracer,
    finish_init,
    log_context,
)
from lambdakit.settings import load_settings
from lambdakit.warm import warm_guard
from vulnstats.dynamo import DynamoStore
from vulnstats.queries import DynamoReader

# Init: settings are validated here so a misconfigured function fails its cold start, not a request.
_observability = ObservabilitySettings.from_env()
settings = load_settings(ApiSettings)
logger = create_logger(_observability, packages=("vulnstats",))
metrics = create_metrics(_observability)
tracer = create_tracer(_observability)
# The one client every route needs, created during init so no request pays for it; the Lambda
# client of POST /sync is created on first use.
store = DynamoStore(settings.table_name, client=get_client("dynamodb"))
reader = DynamoReader(store)
if settings.snap_start:
    # SnapStart: the snapshot keeps the client (its parsed models), never a connection; every
    # restored copy gets new clients and new random seeds, and the store uses the new client.
    from lambdakit import snapstart  # only SnapStart functions pay for its import

    snapstart.install([lambda: store.use_client(get_client("dynamodb"))])
else:
    # Prime: one cheap read (what /health reads) opens the connection and loads what botocore
    # loads on a first call. Skipped under SnapStart: a snapshot keeps no live connection.
    prime(reader, logger)
app = create_app(settings, reader, logger=logger)


@warm_guard(metrics=PowertoolsMetricSink(metrics), app_version=settings.app_version)
@capture_handler(tracer)
@log_context(
    logger,
    correlation_id_path=correlation_paths.API_GATEWAY_REST,
    debug_fields=api_gateway_fields,
)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Route one API Gateway REST proxy event."""
    return app.resolve(event, context)


finish_init()
