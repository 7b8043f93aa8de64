"""SyncFunction entry point: SyncRequests messages (or one direct trigger) drive the sync engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

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
from sync_fn.wiring import build_consumer, build_engine, once_per_key
from vulnstats.triggers import InvocationStatus, parse_trigger

if TYPE_CHECKING:
    from vulnstats.triggers import Trigger

_observability = ObservabilitySettings.from_env()
settings = load_settings(SyncSettings)
logger = create_logger(_observability, packages=("vulnstats",))
metrics = create_metrics(_observability)
metric_sink = PowertoolsMetricSink(metrics)
tracer = create_tracer(_observability)


def _run(trigger: Trigger, context: Any) -> dict[str, Any]:
    return build_engine(settings, context, metric_sink, logger).handle(trigger).to_answer()


# Duplicate deliveries of one scheduled event, or of one continuation, run once.
_run_once = once_per_key(settings, _run)


def _handle(trigger: Trigger, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    logger.append_keys(trigger=trigger.kind)
    try:
        # A person's start has no key: no deduplication, but the run lock still refuses a second.
        run = _run if trigger.idempotency_key is None else _run_once
        result = run(trigger, context)
    except IdempotencyAlreadyInProgressError:
        status = InvocationStatus.DUPLICATE.value
        result = {"status": status, "run_id": None, "message": "already being handled"}
    metrics.add_metric(name="SyncDurationSeconds", unit="Seconds", value=time.monotonic() - started)
    logger.info("sync invocation finished", extra={"sync": result})
    return result


@warm_guard(metrics=metric_sink, app_version=settings.app_version)
@capture_handler(tracer)
@log_context(logger)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An SQS batch from SyncRequests (partial batch response), or one trigger invoked directly.

    A direct trigger that is not valid raises, so the caller sees the reason; a message that is
    not valid is a batch item failure, so it reaches the DLQ after maxReceiveCount receives.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list):
        consumer = build_consumer(
            settings, context, lambda trigger: _handle(trigger, context), logger
        )
        return consumer.handle(records)
    return _handle(parse_trigger(event), context)


finish_init()
