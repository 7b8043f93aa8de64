"""SyncFunction entry point: accepts scheduled, manual and continuation events."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lambdakit.observability import (
    ObservabilitySettings,
    PowertoolsMetricSink,
    capture_handler,
    create_logger,
    create_metrics,
    create_tracer,
    finish_init,
)
from lambdakit.settings import load_settings
from lambdakit.warm import warm_guard
from sync_fn.settings import SyncSettings
from sync_fn.triggers import parse_trigger

_observability = ObservabilitySettings.from_env()
settings = load_settings(SyncSettings)
logger = create_logger(_observability)
metrics = create_metrics(_observability)
tracer = create_tracer(_observability)


@warm_guard(metrics=PowertoolsMetricSink(metrics), app_version=settings.app_version)
@capture_handler(tracer)
@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the trigger; a bad event raises so it reaches the dead-letter queue intact."""
    trigger = parse_trigger(event)
    kind = type(trigger).__name__.removesuffix("Trigger").lower()
    logger.warning(
        "sync trigger accepted; the sync engine is not part of this version",
        extra={"trigger": kind, **asdict(trigger)},
    )
    return {"status": "skipped", "trigger": kind, "reason": "sync engine not deployed yet"}


finish_init()
