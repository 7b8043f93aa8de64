"""Cost per million invocations from the billed duration and memory, checked by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ops.aws_prices import PRICES
from perftest.cost import cost_per_million, lambda_prices, per_million, price_basis

# Example prices for the arithmetic only (not a price table): $0.20 per million requests and
# $0.0000166667 per GB-second.
EXAMPLE = replace(
    PRICES["x86_64"], request_per_million_usd=0.20, gb_second_usd=0.0000166667, source="example"
)


def test_a_worked_example() -> None:
    # 1024 MB = 1 GB; a mean billed duration of 100 ms = 0.1 s, so 0.1 GB-s per invocation,
    # 100,000 GB-s per million: 100,000 x 0.0000166667 = $1.66667, plus $0.20 of requests.
    assert per_million(100.0, 1024, EXAMPLE) == pytest.approx(1.86667, abs=1e-5)


def test_cost_grows_with_memory_at_equal_duration() -> None:
    # 512 MB for 100 ms is half the GB-seconds of 1024 MB: $0.83333 + $0.20
    assert per_million(100.0, 512, EXAMPLE) == pytest.approx(1.03333, abs=1e-5)


def test_an_empty_series_has_no_cost() -> None:
    assert cost_per_million(None, 1024, "arm64", "us-east-1") is None


def test_nonsense_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="memory"):
        per_million(10.0, 0, EXAMPLE)


def test_reports_price_us_east_1_from_the_shared_table() -> None:
    # arm64 in us-east-1: $0.20 per million requests + 100,000 GB-s x $0.0000133334 = $1.33334
    assert cost_per_million(100.0, 1024, "arm64", "us-east-1") == pytest.approx(1.53334)
    # x86_64: 100,000 GB-s x $0.0000166667 = $1.66667, + $0.20
    assert cost_per_million(100.0, 1024, "x86_64", "us-east-1") == pytest.approx(1.86667)


def test_a_region_without_prices_has_no_cost() -> None:
    # given a function in a region the table does not hold: null, not us-east-1's figure
    assert lambda_prices("arm64", "eu-west-1") is None
    assert cost_per_million(100.0, 1024, "arm64", "eu-west-1") is None
    assert cost_per_million(100.0, 1024, "arm64", None) is None


def test_the_report_names_the_price_source_and_date() -> None:
    assert price_basis() == {
        "source": "https://aws.amazon.com/lambda/pricing/ (US East (N. Virginia))",
        "date": "2026-12-04",
    }
