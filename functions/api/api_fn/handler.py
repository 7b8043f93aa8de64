"""ApiFunction entry point: warming pings first, then Powertools routing of API Gateway events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.logging import correlation_paths

from api_fn.app import create_app, prime
from api_fn.settings import ApiSettings
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
from lambdakit.retry import Deadline
from lambdakit.settings import load_settings
from lambdakit.warm import warm_guard
from vulnstats.dynamo import DynamoStore
from vulnstats.queries import DynamoReader

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Seconds of the invocation kept free when the DynamoDB client's retries are bounded.
_DEADLINE_MARGIN = 0.5


def _new_dynamodb_client() -> Any:
    """The read path's DynamoDB client: the botocore-free one unless settings ask for botocore.

    Either answers ``get_item`` and ``query`` alike (the only calls of the read path); botocore
    is imported here only when chosen, and otherwise on the first POST /sync.
    """
    if settings.dynamodb_client == "botocore":
        from lambdakit.clients import get_client  # noqa: PLC0415 - the escape hatch only

        return get_client("dynamodb")
    from vulnstats.dynamo_http import DynamoHttpClient  # noqa: PLC0415 - beside its twin

    return DynamoHttpClient.from_env(
        connect_timeout=settings.dynamodb_connect_timeout,
        read_timeout=settings.dynamodb_read_timeout,
    )


# Init: settings are validated here so a misconfigured function fails its cold start, not a request.
_observability = ObservabilitySettings.from_env()
settings = load_settings(ApiSettings)
logger = create_logger(_observability, packages=("vulnstats",))
metrics = create_metrics(_observability)
tracer = create_tracer(_observability)
# The one client every route needs, created during init so no request pays for it; the Lambda
# client of POST /sync is created on first use.
dynamodb = _new_dynamodb_client()
store = DynamoStore(settings.table_name, client=cast("DynamoDBClient", dynamodb))
reader = DynamoReader(store)
if settings.snap_start:
    # SnapStart: the snapshot keeps the client, never a connection or credentials; every restored
    # copy gets new clients and new random seeds, and the store uses the new client.
    from lambdakit import snapstart  # only SnapStart functions pay for its import

    snapstart.install([lambda: store.use_client(_new_dynamodb_client())])
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
    client = store.client
    if hasattr(client, "set_deadline"):  # the botocore-free client bounds its retries by it
        client.set_deadline(Deadline.from_context(context, safety_margin=_DEADLINE_MARGIN))
    return app.resolve(event, context)


# No gc.collect() first: the API's init leaves about 150 collectable objects, and a full pass over
# the loaded heap costs more of its cold start than keeping them frozen costs memory.
finish_init(collect=False)
