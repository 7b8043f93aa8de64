"""Standby region cost: samconfig's dr priced by part, the parts follow the settings, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from ops.aws_prices import SERVICE_PRICES, PriceError, service_price
from ops.dr_cost import PARTS, DrAssumptions, Line, Standby, estimate, main, read_standby

if TYPE_CHECKING:
    from ops.aws_prices import LambdaPriceTable

REPO: Final = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def standby() -> Standby:
    return read_standby("dr", "prod")


def _line(standby: Standby, part: str) -> Line:
    (found,) = [line for line in estimate(standby).lines if line.part.startswith(part)]
    return found


def test_the_standby_is_read_from_samconfig_dr_and_the_template(standby: Standby) -> None:
    assert (standby.region, standby.sync_schedule) == ("us-west-2", "rate(3 hours)")
    assert standby.failover_member
    assert standby.health_check_interval_s == 30
    assert standby.shared_api_key
    assert standby.sync_memory_mb == 1536
    assert standby.warming.deployed_strategy == "warmer"
    assert not standby.primary_replicates_here  # prod does not replicate, as samconfig stands


def test_the_total_is_the_sum_of_the_counted_parts_and_shows_every_part(standby: Standby) -> None:
    result = estimate(standby)

    assert len(result.lines) == len(PARTS)
    assert result.total_usd == pytest.approx(sum(x.usd for x in result.lines if x.counted))
    replication = _line(standby, "archive replication")
    assert not replication.counted  # shown as an option, not added
    assert replication.usd > 0
    # the health check is $0.50 basic + $1.00 for HTTPS
    assert _line(standby, "Route 53 health check").usd == pytest.approx(1.50)


def test_health_check_requests_are_counted_as_api_requests(standby: Standby) -> None:
    # one request every 2 s for 730 h: 1,314,000 requests at API Gateway's price alone
    line = _line(standby, "health check requests")
    api_gateway = 1_314_000 / 1e6 * service_price("api_gateway_rest_million").usd
    assert line.usd > api_gateway
    assert "1,314,000 requests" in line.basis


def test_a_faster_interval_costs_a_feature_and_three_times_the_requests(standby: Standby) -> None:
    fast = replace(standby, health_check_interval_s=10)

    assert _line(fast, "Route 53 health check").usd == pytest.approx(2.50)
    assert _line(fast, "health check requests").usd == pytest.approx(
        3 * _line(standby, "health check requests").usd
    )


def test_the_sync_part_follows_the_standbys_schedule(standby: Standby) -> None:
    hourly = replace(standby, sync_schedule="rate(1 hour)")

    assert _line(hourly, "SyncFunction").usd == pytest.approx(
        3 * _line(standby, "SyncFunction").usd
    )


def test_replication_counts_when_the_primary_replicates(standby: Standby) -> None:
    on = replace(standby, primary_replicates_here=True)

    assert _line(on, "archive replication").counted
    assert estimate(on).total_usd == pytest.approx(
        estimate(standby).total_usd + _line(on, "archive replication").usd
    )


def test_a_stack_outside_failover_has_no_route_53_costs(standby: Standby) -> None:
    single = replace(standby, failover_member=False)

    for part in ("Route 53 health check", "health check requests", "DNS queries"):
        assert _line(single, part).usd == 0


def test_adding_a_part_is_one_entry(standby: Standby) -> None:
    def queue_part(_s: Standby, _a: DrAssumptions, _p: LambdaPriceTable) -> Line:
        return Line("SyncRequests queue", "a few thousand requests", 0.01)

    result = estimate(standby, parts=(*PARTS, queue_part))

    assert result.lines[-1].part == "SyncRequests queue"
    assert result.total_usd == pytest.approx(estimate(standby).total_usd + 0.01)


def test_every_service_price_names_its_source_and_date() -> None:
    for name, price in SERVICE_PRICES.items():
        assert price.usd > 0, name
        assert price.source, name
        assert price.per, name
        assert len(price.checked) == 10, name
    with pytest.raises(PriceError, match="us-east-1 only"):
        service_price("kms_key", "eu-west-1")


def test_the_command_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    table = capsys.readouterr().out
    for expected in ("total", "Not counted", "SQS (SyncRequests)"):
        assert expected in table
    assert main(["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["total_usd"] == pytest.approx(estimate(read_standby("dr", "prod")).total_usd)


def test_an_unknown_environment_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-env", "staging"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "staging" in error
    assert "dr" in error
