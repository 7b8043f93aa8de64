"""WarmerFunction settings, read and validated once per execution environment."""

from __future__ import annotations

from lambdakit.settings import (
    env,
    in_range,
    parse_csv,
    parse_float,
    parse_int,
    parse_str,
    settings,
)
from lambdakit.warmer import MAX_FANOUT

__all__ = ["WarmerSettings", "parse_targets"]


def parse_targets(raw: str) -> tuple[str, ...]:
    """A comma-separated list of at least one function name or ARN to keep warm."""
    targets = parse_csv(raw)
    if not targets:
        raise ValueError("names no function to warm")
    if len(set(targets)) != len(targets):
        raise ValueError("names a function twice (its pings would be counted twice)")
    return targets


@settings
class WarmerSettings:
    """What the warmer needs from its environment; a bad value stops the cold start loudly."""

    app_version: str = env("APP_VERSION", parse_str, default="0.0.0-dev")
    # Alias-qualified names or ARNs: what API Gateway invokes, not $LATEST (its own environments).
    targets: tuple[str, ...] = env("WARM_TARGETS", parse_targets)
    # N of a Scheduled Event; a schedule whose Input names a concurrency overrides it.
    concurrency: int = env("WARM_CONCURRENCY", in_range(parse_int, minimum=1, maximum=MAX_FANOUT))
    # How long each pinged environment holds before answering, so the N pings overlap.
    hold_ms: int = env("WARM_HOLD_MS", in_range(parse_int, minimum=0, maximum=1000), default=150)
    # Read timeout of one ping: a cold environment's init plus the hold must fit in it.
    ping_timeout_seconds: float = env(
        "WARM_PING_TIMEOUT_SECONDS",
        in_range(parse_float, minimum=1.0, maximum=50.0),
        default=15.0,
    )
