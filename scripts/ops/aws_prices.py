"""AWS Lambda list prices for us-east-1: the one price table every cost figure here uses.

Region: US East (N. Virginia), us-east-1, the region of every samconfig.toml environment. Other
regions have other prices; ``lambda_price_table`` refuses them (``PriceError``) rather than
quietly applying these figures. Tiers: the first on-demand duration tier only (up to 6 billion
GB-seconds a month). Free tier and Savings Plans are not applied.

What the ``search`` tool could and could not confirm on 2026-12-04 (the date every figure was
checked; the prices themselves have not changed since 2024):

- requests $0.20 per million and x86_64 on-demand $0.0000166667 per GB-second: AWS's own pricing
  page examples and "How AWS Pricing Works" (confirmed);
- arm64 on-demand $0.0000133334 per GB-second: third-party pages quoting the AWS page (confirmed
  there, not on an AWS page);
- provisioned concurrency $0.0000041667 (x86_64) / $0.0000033334 (arm64) per GB-second, and the
  duration price while provisioned $0.0000097222 / $0.0000077778 per GB-second: only in
  transcriptions of the AWS Price List (usage types Lambda-Provisioned-Concurrency(-ARM) and
  Lambda-Provisioned-GB-Second(-ARM)) found in public repositories; the AWS page's tables are
  rendered client-side and the stored copies do not show them (not confirmed on an AWS page);
- SnapStart cache $0.0000015046 per GB-second (minimum 3 hours per version) and restore
  $0.0001397998 per GB restored: third-party pages and transcriptions of the AWS pricing example;
  no separate arm64 figure was found, so both architectures use the same SnapStart prices
  (not confirmed on an AWS page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["PRICES", "PRICE_REGION", "LambdaPriceTable", "PriceError", "lambda_price_table"]

PRICE_REGION: Final = "us-east-1"
CHECKED: Final = "2026-12-04"
SOURCE: Final = "https://aws.amazon.com/lambda/pricing/ (US East (N. Virginia))"


class PriceError(ValueError):
    """No price in the table for this architecture or region."""


@dataclass(frozen=True, slots=True)
class LambdaPriceTable:
    """Lambda prices in USD for one architecture in us-east-1, with their source and date."""

    architecture: str
    request_per_million_usd: float
    gb_second_usd: float  # on-demand duration, first tier
    provisioned_gb_second_usd: float  # provisioned concurrency kept, used or not
    provisioned_duration_gb_second_usd: float  # duration of requests served by it
    snapstart_cache_gb_second_usd: float  # per GB-second a version is cached (3 h minimum)
    snapstart_restore_gb_usd: float  # per GB of memory restored from a snapshot
    source: str = SOURCE
    checked: str = CHECKED


PRICES: Final[dict[str, LambdaPriceTable]] = {
    "arm64": LambdaPriceTable(
        architecture="arm64",
        request_per_million_usd=0.20,
        gb_second_usd=0.0000133334,
        provisioned_gb_second_usd=0.0000033334,
        provisioned_duration_gb_second_usd=0.0000077778,
        snapstart_cache_gb_second_usd=0.0000015046,
        snapstart_restore_gb_usd=0.0001397998,
    ),
    "x86_64": LambdaPriceTable(
        architecture="x86_64",
        request_per_million_usd=0.20,
        gb_second_usd=0.0000166667,
        provisioned_gb_second_usd=0.0000041667,
        provisioned_duration_gb_second_usd=0.0000097222,
        snapstart_cache_gb_second_usd=0.0000015046,
        snapstart_restore_gb_usd=0.0001397998,
    ),
}


def lambda_price_table(architecture: str, region: str = PRICE_REGION) -> LambdaPriceTable:
    """The prices of one architecture; PriceError for another region or an unknown architecture."""
    if region != PRICE_REGION:
        raise PriceError(
            f"no Lambda prices for region {region!r}: the table (scripts/ops/aws_prices.py) holds "
            f"{PRICE_REGION} only"
        )
    try:
        return PRICES[architecture]
    except KeyError:
        known = ", ".join(sorted(PRICES))
        raise PriceError(f"no Lambda prices for architecture {architecture!r} ({known})") from None
