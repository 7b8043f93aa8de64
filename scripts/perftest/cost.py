"""Cost per million invocations from a measured mean Billed Duration, memory and architecture.

The formula lives here; the prices do not. They come from the project's one price table,
``scripts/ops/aws_prices.py`` (us-east-1 list prices with their source and date), looked up by
architecture and region in ``lambda_prices``. A region or architecture the table does not hold
answers None, so that function's costs in the report are null: no figure is ever made up.
"""

from __future__ import annotations

from typing import Any

from ops.aws_prices import PRICE_REGION, LambdaPriceTable, PriceError, lambda_price_table

__all__ = ["cost_per_million", "lambda_prices", "per_million", "price_basis"]


def per_million(billed_ms_mean: float, memory_mb: int, prices: LambdaPriceTable) -> float:
    """USD per million invocations: requests plus GB-seconds (memory/1024 x billed seconds)."""
    if billed_ms_mean < 0 or memory_mb <= 0:
        raise ValueError("billed duration must be >= 0 and memory > 0")
    gb_seconds = memory_mb / 1024 * billed_ms_mean / 1000
    return prices.request_per_million_usd + 1_000_000 * gb_seconds * prices.gb_second_usd


def lambda_prices(architecture: str, region: str | None) -> LambdaPriceTable | None:
    """The price table's prices for this architecture and region; None if it has none."""
    try:
        return lambda_price_table(architecture, region or "")
    except PriceError:
        return None


def cost_per_million(
    billed_ms_mean: float | None, memory_mb: int, architecture: str, region: str | None
) -> float | None:
    """USD per million invocations of ``billed_ms_mean`` each, or None (no data, no prices)."""
    prices = lambda_prices(architecture, region)
    if billed_ms_mean is None or prices is None:
        return None
    return per_million(billed_ms_mean, memory_mb, prices)


def price_basis() -> dict[str, Any] | None:
    """Where the prices come from (source and date), for the report."""
    prices = lambda_prices("arm64", PRICE_REGION)
    return None if prices is None else {"source": prices.source, "date": prices.checked}
