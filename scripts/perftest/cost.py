"""Cost per million invocations from measured billed durations (prices live in aws_prices)."""

from __future__ import annotations

from typing import Any

__all__ = ["cost_per_million", "price_basis"]


def cost_per_million(
    billed_ms_mean: float | None, memory_mb: int, architecture: str, region: str | None
) -> float | None:
    """USD per million invocations of ``billed_ms_mean`` each; None while prices are missing."""
    del billed_ms_mean, memory_mb, architecture, region
    return None


def price_basis() -> dict[str, Any] | None:
    """Where the prices come from (source and date), for the report."""
    return None
