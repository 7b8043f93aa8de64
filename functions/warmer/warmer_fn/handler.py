"""WarmerFunction entry point: accepts its scheduled events and validates its targets."""

from __future__ import annotations

from typing import Any

from lambdakit.observability import (
    ObservabilitySettings,
    create_logger,
    finish_init,
)
from lambdakit.settings import load_settings
from warmer_fn.settings import WarmerSettings

_observability = ObservabilitySettings.from_env()
settings = load_settings(WarmerSettings)
logger = create_logger(_observability)


class InvalidWarmerEventError(ValueError):
    """The event is not a scheduled event; the message names what is wrong."""


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Accept a scheduled event; warming itself arrives with the warming issue."""
    if not isinstance(event, dict) or event.get("detail-type") != "Scheduled Event":
        raise InvalidWarmerEventError("event: expected an EventBridge 'Scheduled Event'")
    logger.warning(
        "warmer schedule accepted; pinging is not part of this version",
        extra={"targets": list(settings.targets), "concurrency": settings.concurrency},
    )
    return {
        "status": "skipped",
        "targets": list(settings.targets),
        "reason": "warmer not deployed yet",
    }


finish_init()
