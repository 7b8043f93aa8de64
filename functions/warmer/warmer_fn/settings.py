"""WarmerFunction settings, read and validated once per execution environment."""

from __future__ import annotations

from lambdakit.settings import (
    env,
    in_range,
    parse_csv,
    parse_int,
    parse_str,
    settings,
)

__all__ = ["WarmerSettings", "parse_targets"]


def parse_targets(raw: str) -> tuple[str, ...]:
    """A comma-separated list of at least one function name or ARN to keep warm."""
    targets = parse_csv(raw)
    if not targets:
        raise ValueError("names no function to warm")
    return targets


@settings
class WarmerSettings:
    """What the warmer needs from its environment; a bad value stops the cold start loudly."""

    app_version: str = env("APP_VERSION", parse_str, default="0.0.0-dev")
    targets: tuple[str, ...] = env("WARM_TARGETS", parse_targets)
    concurrency: int = env("WARM_CONCURRENCY", in_range(parse_int, minimum=1, maximum=100))
