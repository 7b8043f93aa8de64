"""WarmerFunction entry point: one warming run per schedule tick, reported as metrics and a log."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdakit.clients import configure_clients, get_client
from lambdakit.observability import (
    ObservabilitySettings,
    create_logger,
    create_metrics,
    finish_init,
    log_context,
)
from lambdakit.settings import load_settings
from lambdakit.warmer import MAX_FANOUT, BotocoreInvoker, Warmer, no_retry_options
from vulnstats.metrics import WARMER_DURATION_MS
from warmer_fn.run import InvalidWarmerEventError, metric_values, parse_event
from warmer_fn.settings import WarmerSettings

__all__ = ["InvalidWarmerEventError", "handler"]

_observability = ObservabilitySettings.from_env()
settings = load_settings(WarmerSettings)
logger = create_logger(_observability)
metrics = create_metrics(_observability)
# One attempt per ping (a throttle is reported, never retried) and a connection per ping.
configure_clients(
    no_retry_options(MAX_FANOUT, len(settings.targets), read_timeout=settings.ping_timeout_seconds)
)
warmer = Warmer(BotocoreInvoker(get_client("lambda")), hold_ms=settings.hold_ms)


@log_context(logger)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Ping every target N times at once; one metric set and one log line per run."""
    request = parse_event(
        event,
        default_concurrency=settings.concurrency,
        request_id=str(getattr(context, "aws_request_id", "") or "local"),
    )
    report = warmer.warm(settings.targets, request.concurrency, run_id=request.run_id)
    for name, value in metric_values(report).items():
        unit = MetricUnit.Milliseconds if name == WARMER_DURATION_MS else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)
    summary = {"schedule": request.schedule, **report.to_dict()}
    if report.complete:
        logger.info("warming run", extra=summary)
    else:
        logger.warning("warming run fell short", extra=summary)
    return summary


finish_init()
