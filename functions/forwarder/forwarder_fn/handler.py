"""MetricsForwarderFunction entry point: a log subscription batch in, Datadog series out."""

from __future__ import annotations

import threading
from typing import Any

import requests

from forwarder_fn.adapters import SqsDeadLetters, read_api_key
from forwarder_fn.datadog import DatadogClient, breaker_counts, is_transient, retry_after_of
from forwarder_fn.forward import Forwarder
from forwarder_fn.settings import ForwarderSettings
from lambdakit.breaker import CircuitBreaker
from lambdakit.clients import get_client
from lambdakit.observability import (
    ObservabilitySettings,
    PowertoolsMetricSink,
    create_logger,
    create_metrics,
    finish_init,
    log_context,
)
from lambdakit.retry import Deadline, Retrier
from lambdakit.settings import load_settings

__all__ = ["handler"]

_observability = ObservabilitySettings.from_env()
settings = load_settings(ForwarderSettings)
logger = create_logger(_observability, packages=("forwarder_fn",))
metrics = create_metrics(_observability)
metric_sink = PowertoolsMetricSink(metrics)
session = requests.Session()
_client_lock = threading.Lock()
_client: list[DatadogClient] = []


def _datadog() -> DatadogClient:
    """The environment's client, created on first use (it reads the API key secret once)."""
    with _client_lock:
        if not _client:
            key = read_api_key(get_client("secretsmanager"), settings.api_key_secret_arn)
            _client.append(DatadogClient(settings.api_url, key, session))
        return _client[0]


# One breaker per environment: its state survives across invocations, so an intake that is
# down is not called by every batch while it stays down.
breaker = CircuitBreaker(
    "datadog-intake",
    failure_threshold=3,
    reset_timeout=settings.breaker_reset_seconds,
    counts=breaker_counts,
    metrics=metric_sink,
    logger=logger,
)
retrier = Retrier(
    retryable=is_transient,
    max_attempts=3,
    base_delay=0.2,
    max_delay=2.0,
    max_wait=10.0,
    min_attempt_time=1.0,
    retry_after=retry_after_of,
    metrics=metric_sink,
    logger=logger,
    name="datadog",
)
forwarder = Forwarder(
    _datadog,
    breaker=breaker,
    retrier=retrier,
    dead_letters=SqsDeadLetters(get_client("sqs"), settings.dead_letter_queue_url),
    metrics=metric_sink,
    prefix=settings.metric_prefix,
    tags=settings.tags,
)


@log_context(logger)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Forward one subscription batch, or replay the DLQ when asked ``{"replay": {...}}``."""
    deadline = Deadline.from_context(context, safety_margin=2.0)
    if "replay" in event:
        limit = (
            int(event["replay"].get("maxMessages", 10)) if isinstance(event["replay"], dict) else 10
        )
        outcome = forwarder.replay(deadline, max_messages=max(1, min(limit, 1000)))
        logger.info("metrics replay", extra=outcome.to_dict())
    else:
        outcome = forwarder.forward_event(event, deadline)
        if outcome.dead_lettered or outcome.dropped:
            logger.warning("metrics forwarded in part", extra=outcome.to_dict())
    return outcome.to_dict()


finish_init()
