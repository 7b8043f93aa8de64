"""Warmer events: a Scheduled Event uses WARM_CONCURRENCY, a schedule Input names its own."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.lambda_pool import FakeLambda

from lambdakit.warmer import Warmer
from vulnstats.metrics import WARMER_METRICS
from warmer_fn.run import InvalidWarmerEventError, metric_values, parse_event


def test_a_scheduled_event_asks_for_the_configured_concurrency(load_event: Any) -> None:
    event = load_event("warmer_scheduled.json")

    request = parse_event(event, default_concurrency=3, request_id="req-1")

    assert request.concurrency == 3
    assert request.schedule == "vulnstats-dev-WarmerFunctionOffPeak-9ZY8XW7VU6TS"
    assert request.run_id == "req-1"


def test_a_schedule_input_sets_its_own_concurrency(load_event: Any) -> None:
    event = load_event("warmer_schedule_peak.json")

    request = parse_event(event, default_concurrency=3, request_id="req-1")

    assert (request.schedule, request.concurrency) == ("peak", 6)


def test_a_schedule_input_without_concurrency_uses_the_configured_one() -> None:
    request = parse_event({"schedule": "offpeak"}, default_concurrency=4, request_id="r")
    assert request.concurrency == 4


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event: expected a JSON object"),
        ({"detail-type": "Object Created"}, "Scheduled Event"),
        ({"schedule": ""}, "Scheduled Event"),
        ({"schedule": "peak", "concurrency": 0}, "concurrency: .* got 0"),
        ({"schedule": "peak", "concurrency": 101}, "concurrency: .* got 101"),
        ({"schedule": "peak", "concurrency": "5"}, "concurrency: .* got '5'"),
        ({"schedule": "peak", "concurrency": True}, "concurrency: .* got True"),
    ],
)
def test_a_bad_event_is_refused_with_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(InvalidWarmerEventError, match=message):
        parse_event(event, default_concurrency=3, request_id="r")


def test_metrics_are_named_from_the_catalogue_and_count_what_the_run_found() -> None:
    report = Warmer(FakeLambda(limit=2, arrivals=3)).warm(["api:live"], 3, run_id="r")

    values = metric_values(report)

    assert set(values) == WARMER_METRICS
    assert values["WarmerEnvironmentsReached"] == 2
    assert values["WarmerColdEnvironments"] == 2
    assert values["WarmerThrottles"] == 1
    assert values["WarmerFailures"] == 0
    assert values["WarmerDurationMs"] >= 0
