"""SyncFunction entry point: scheduled, manual and continuation events drive one sync engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from lambdakit.observability import (
    ObservabilitySettings,
    PowertoolsMetricSink,
    capture_handler,
    create_logger,
    create_metrics,
    create_tracer,
    finish_init,
    log_context,
)
from lambdakit.settings import load_settings
from lambdakit.warm import warm_guard
from sync_fn.settings import SyncSettings
from sync_fn.triggers import ContinuationTrigger, ManualTrigger, ScheduledTrigger, parse_trigger
from sync_fn.wiring import build_engine

if TYPE_CHECKING:
    from collections.abc import Callable

_observability = ObservabilitySettings.from_env()
settings = load_settings(SyncSettings)
logger = create_logger(_observability, packages=("vulnstats",))
metrics = create_metrics(_observability)
metric_sink = PowertoolsMetricSink(metrics)
tracer = create_tracer(_observability)

# Duplicate deliveries of one scheduled event, or of one continuation, run once: Powertools
# keeps a record per key in the state table (its own partition, expired by the table's TTL).
_idempotency = IdempotencyConfig(
    event_key_jmespath="key", expires_after_seconds=settings.idempotency_ttl_seconds
)
_persistence = DynamoDBPersistenceLayer(
    table_name=settings.table_name,
    key_attr="pk",
    sort_key_attr="sk",
    static_pk_value="IDEMPOTENCY#sync",
    expiry_attr="ttl",
)


def _run(request: dict[str, Any], context: Any) -> dict[str, Any]:
    engine = build_engine(settings, context, metric_sink, logger)
    kind = request["trigger"]
    if kind == "continuation":
        outcome = engine.resume(request["run_id"], request["sequence"])
    else:
        outcome = engine.start(kind, request.get("reason", ""), request.get("run_id"))
    return {
        "status": outcome.status,
        "run_id": outcome.run_id,
        "message": outcome.message,
        "counts": outcome.counts.to_dict(),
        "run_counts": outcome.run_counts.to_dict(),
    }


def _run_keyed(*, request: dict[str, Any], context: Any) -> dict[str, Any]:
    return _run(request, context)


# Powertools' decorator is untyped: keep the wrapped function's signature for mypy.
_run_once: Callable[..., dict[str, Any]] = idempotent_function(
    data_keyword_argument="request", persistence_store=_persistence, config=_idempotency
)(_run_keyed)


@warm_guard(metrics=metric_sink, app_version=settings.app_version)
@capture_handler(tracer)
@log_context(logger)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the trigger (a bad event raises, so it reaches the DLQ intact) and run the sync."""
    trigger = parse_trigger(event)
    started = time.monotonic()
    request: dict[str, Any]
    match trigger:
        case ScheduledTrigger(event_id=event_id):
            request = {"key": f"scheduled#{event_id}", "trigger": "scheduled"}
        case ContinuationTrigger(run_id=run_id, sequence=sequence):
            request = {
                "key": f"continue#{run_id}#{sequence}",
                "trigger": "continuation",
                "run_id": run_id,
                "sequence": sequence,
            }
        case ManualTrigger(reason=reason, run_id=run_id):
            # A person asked: no deduplication, but the run lock still refuses a second run.
            request = {"trigger": "manual", "reason": reason, "run_id": run_id}
    logger.append_keys(trigger=request["trigger"])
    try:
        if "key" in request:
            _idempotency.register_lambda_context(context)
            result = _run_once(request=request, context=context)
        else:
            result = _run(request, context)
    except IdempotencyAlreadyInProgressError:
        result = {"status": "duplicate", "run_id": None, "message": "already being handled"}
    metrics.add_metric(name="SyncDurationSeconds", unit="Seconds", value=time.monotonic() - started)
    logger.info("sync invocation finished", extra={"sync": result})
    return result


finish_init()
