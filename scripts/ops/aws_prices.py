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

__all__ = [
    "PRICES",
    "PRICE_REGION",
    "SERVICE_PRICES",
    "LambdaPriceTable",
    "PriceError",
    "ServicePrice",
    "lambda_price_table",
    "service_price",
]

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


def _check_region(region: str, what: str) -> None:
    if region != PRICE_REGION:
        raise PriceError(
            f"no {what} for region {region!r}: the table (scripts/ops/aws_prices.py) holds "
            f"{PRICE_REGION} only"
        )


def lambda_price_table(architecture: str, region: str = PRICE_REGION) -> LambdaPriceTable:
    """The prices of one architecture; PriceError for another region or an unknown architecture."""
    _check_region(region, "Lambda prices")
    try:
        return PRICES[architecture]
    except KeyError:
        known = ", ".join(sorted(PRICES))
        raise PriceError(f"no Lambda prices for architecture {architecture!r} ({known})") from None


# ------------------------------------------------------------------ other services (us-east-1)
# The prices the standby region's cost model (ops/dr_cost.py) needs beyond Lambda's. Each names
# its source and the date it was checked with the search tool; first tier, no free tier.
ROUTE53_SOURCE: Final = (
    "https://aws.amazon.com/route53/pricing/ (transcribed verbatim on 2026-09-20 in the public "
    "api-evangelist/amazon-route53-resolver plans file; no AWS page copy was stored)"
)
TRANSFER_SOURCE: Final = (
    "AWS re:Post article 'Cost effective methods for accessing S3 buckets cross-region' "
    "(prices verified January 2026): us-east-1 to us-west-2, lowest volume tier"
)
S3_SOURCE: Final = (
    "https://aws.amazon.com/s3/pricing/ (S3 Standard, us-east-1; replication is billed as the "
    "destination's PUT requests and storage plus inter-region transfer)"
)
SQS_SOURCE: Final = (
    "cloudburn.io 'Amazon SQS Pricing: Complete Guide' (us-east-1, March 2026) and AWS's SQS "
    "guide ('Short polling is billed the same as long polling'): standard queue, first tier"
)
README_SOURCE: Final = (
    "the service's pricing page, as README.md 'What it costs' quotes it (not re-checked)"
)
SERVICES_CHECKED: Final = "2026-12-06"


@dataclass(frozen=True, slots=True)
class ServicePrice:
    """One list price in USD: what it is per, where it comes from, when it was checked."""

    usd: float
    per: str
    source: str
    checked: str = SERVICES_CHECKED


SERVICE_PRICES: Final[dict[str, ServicePrice]] = {
    "route53_health_check": ServicePrice(
        0.50, "basic health check of an AWS endpoint per month", ROUTE53_SOURCE
    ),
    # HTTPS, string matching, fast interval (10 s) and latency measurement are each a feature.
    "route53_health_check_feature": ServicePrice(
        1.00, "optional health check feature (AWS endpoint) per month", ROUTE53_SOURCE
    ),
    "route53_hosted_zone": ServicePrice(
        0.50, "hosted zone per month (first 25; up to 10,000 records included)", ROUTE53_SOURCE
    ),
    "route53_queries_million": ServicePrice(
        0.40, "million standard queries (first billion a month)", ROUTE53_SOURCE
    ),
    "inter_region_transfer_gb": ServicePrice(
        0.02, "GB sent from us-east-1 to another AWS region", TRANSFER_SOURCE
    ),
    "s3_put_thousand": ServicePrice(0.005, "thousand PUT, COPY, POST or LIST requests", S3_SOURCE),
    "s3_standard_gb_month": ServicePrice(0.023, "GB-month of S3 Standard (first 50 TB)", S3_SOURCE),
    "dynamodb_write_million": ServicePrice(
        0.625,
        "million on-demand write request units",
        "airbyte.com DynamoDB pricing guide (July 2025): the November 2024 on-demand price cut",
    ),
    "dynamodb_read_million": ServicePrice(
        0.125,
        "million on-demand read request units",
        "airbyte.com DynamoDB pricing guide (July 2025): the November 2024 on-demand price cut",
    ),
    "sqs_standard_million": ServicePrice(
        0.40, "million standard-queue requests, empty receives included", SQS_SOURCE
    ),
    "api_gateway_rest_million": ServicePrice(
        3.50, "million REST API requests (first 333 million)", README_SOURCE
    ),
    "cloudwatch_alarm_metric": ServicePrice(
        0.10, "standard-resolution alarm metric per month", README_SOURCE
    ),
    "cloudwatch_dashboard": ServicePrice(3.00, "dashboard per month", README_SOURCE),
    "cloudwatch_metric": ServicePrice(
        0.30, "custom metric per month (Lambda Insights bills its metrics so)", README_SOURCE
    ),
    "secrets_manager_secret": ServicePrice(0.40, "secret (or replica) per month", README_SOURCE),
    "kms_key": ServicePrice(1.00, "customer managed key per month", README_SOURCE),
}


def service_price(name: str, region: str = PRICE_REGION) -> ServicePrice:
    """One price of ``SERVICE_PRICES``; PriceError for another region or an unknown name."""
    _check_region(region, "prices")
    try:
        return SERVICE_PRICES[name]
    except KeyError:
        raise PriceError(f"no price {name!r} in scripts/ops/aws_prices.py") from None
