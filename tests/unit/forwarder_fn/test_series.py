"""Subscription events decoded, EMF points turned into Datadog series, payloads kept in bounds."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from forwarder_fn.series import AwslogsError, decode_awslogs, payloads, series_of
from lambdakit.emf import MetricPoint
from localstage.log_subscriptions import awslogs_event

NOW = 1_700_000_000.0


def _point(name: str, value: float, unit: str = "Count", at: float = NOW) -> MetricPoint:
    return MetricPoint("VulnStats", name, unit, value, int(at * 1000), (("service", "api"),))


def test_given_subscription_event_when_decoding_then_group_and_messages_come_back() -> None:
    batch = decode_awslogs(awslogs_event("/aws/lambda/s-api", ["a", "b"]))

    assert batch is not None
    assert (batch.log_group, batch.messages) == ("/aws/lambda/s-api", ("a", "b"))


def test_given_control_message_when_decoding_then_nothing_to_forward() -> None:
    data = base64.b64encode(gzip.compress(b'{"messageType": "CONTROL_MESSAGE"}')).decode()

    assert decode_awslogs({"awslogs": {"data": data}}) is None


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"awslogs": {"data": "not base64!"}},
        {"awslogs": {"data": base64.b64encode(b"x").decode()}},
    ],
)
def test_given_event_that_is_no_subscription_when_decoding_then_error_says_so(event: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(AwslogsError, match="awslogs"):
        decode_awslogs(event)


def test_given_points_when_converting_then_one_series_per_metric_with_units_and_types() -> None:
    series, late = series_of(
        [
            _point("ApiRequests", 1),
            _point("ApiRequests", 1),
            _point("SyncDurationSeconds", 7, "Seconds"),
        ],
        prefix="vulnstats",
        tags=("env:prod",),
        now=NOW,
    )

    assert late == 0
    by_name = {s["metric"]: s for s in series}
    assert len(by_name["vulnstats.ApiRequests"]["points"]) == 2
    assert by_name["vulnstats.ApiRequests"]["type"] == 1
    assert by_name["vulnstats.SyncDurationSeconds"]["type"] == 3
    assert by_name["vulnstats.SyncDurationSeconds"]["unit"] == "second"
    assert by_name["vulnstats.ApiRequests"]["tags"] == [
        "env:prod",
        "namespace:VulnStats",
        "service:api",
    ]


def test_given_points_outside_datadogs_window_when_converting_then_they_are_counted_out() -> None:
    series, late = series_of(
        [
            _point("A", 1, at=NOW - 3601),
            _point("A", 1, at=NOW + 601),
            _point("A", 1, at=NOW - 3599),
        ],
        prefix="p",
        tags=(),
        now=NOW,
    )

    assert late == 2
    assert [len(s["points"]) for s in series] == [1]


def test_given_many_series_when_batching_then_every_payload_fits_and_none_is_lost() -> None:
    series, _ = series_of(
        [_point(f"Metric{n}", n) for n in range(500)], prefix="p", tags=(), now=NOW
    )

    bodies = list(payloads(series, limit=4_000))

    assert len(bodies) > 1
    assert all(len(body) <= 4_000 for body in bodies)
    assert sum(len(json.loads(b)["series"]) for b in bodies) == 500
