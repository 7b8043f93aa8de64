"""The load tool's accounting without a network: classification, percentiles, bounds, report."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import pytest

from perftest.load_test import (
    LoadTestError,
    Plan,
    Route,
    Sample,
    classify,
    percentile,
    render,
    require_loopback,
    run_load,
    summarise,
)

HEALTH = Route("GET /health", "/health", authenticated=False)
STATS = Route("GET /stats", "/stats")


@dataclass
class FakeClock:
    """A clock every sender call moves forward by the route's latency."""

    now: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@dataclass
class ScriptedSender:
    """Answers per route, each taking a fixed latency on the fake clock."""

    clock: FakeClock
    answers: dict[str, tuple[int | None, str | None]]
    latency_s: dict[str, float]
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, route: Route) -> tuple[int | None, str | None]:
        with self.lock:
            self.calls += 1
        self.clock.advance(self.latency_s[route.name])
        return self.answers[route.name]


# ------------------------------------------------------------------ classification
@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (200, None, "ok"),
        (204, None, "ok"),
        (304, None, "ok"),
        (429, None, "throttled"),
        (400, None, "unexpected"),
        (403, None, "unexpected"),
        (404, None, "unexpected"),
        (500, None, "unexpected"),
        (502, None, "unexpected"),
        (504, None, "unexpected"),
        (None, "ReadTimeout", "unexpected"),
        (None, None, "unexpected"),
    ],
)
def test_only_success_counts_as_ok_and_only_429_as_a_documented_throttle(
    status: int | None, error: str | None, kind: str
) -> None:
    assert classify(status, error) == kind


# ------------------------------------------------------------------ percentiles
def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.5) == 5
    assert percentile(values, 0.9) == 9
    assert percentile(values, 0.99) == 10
    assert percentile(values, 1.0) == 10
    assert percentile([7.0], 0.5) == 7


def test_a_percentile_of_nothing_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 0)


def test_summary_counts_kinds_and_ignores_unanswered_requests_in_latency() -> None:
    # given answers, a throttle and a timeout on one route
    samples = [
        Sample("GET /stats", 200, 0.010),
        Sample("GET /stats", 200, 0.030),
        Sample("GET /stats", 429, 0.001),
        Sample("GET /stats", None, 30.0, "ReadTimeout"),
        Sample("GET /health", 200, 0.005),
    ]
    # when summarised
    stats = summarise(samples)
    # then counts are by kind, latency covers answered requests only, errors are named
    route = stats["GET /stats"]
    assert (route.requests, route.ok, route.throttled, route.unexpected) == (4, 2, 1, 1)
    assert route.max_ms == pytest.approx(30.0)
    assert route.p50_ms == pytest.approx(10.0)
    assert route.errors == {"ReadTimeout": 1}
    assert list(stats) == ["GET /stats", "GET /health"]


def test_a_route_that_never_answered_has_no_latency_figures() -> None:
    stats = summarise([Sample("GET /stats", None, 1.0, "ConnectionError")])
    assert math.isnan(stats["GET /stats"].p50_ms)
    assert stats["GET /stats"].errors == {"ConnectionError": 1}


# ------------------------------------------------------------------ bounds
def test_the_run_stops_at_the_request_bound() -> None:
    clock = FakeClock()
    sender = ScriptedSender(
        clock, {"GET /health": (200, None), "GET /stats": (200, None)}, {"GET /health": 0.001}
    )
    sender.latency_s["GET /stats"] = 0.002
    result = run_load(
        Plan([HEALTH, STATS], concurrency=4, max_requests=37, max_seconds=1e9), sender, clock=clock
    )
    assert sender.calls == 37
    assert len(result.samples) == 37
    assert result.stopped_by == "requests"
    # and the routes were sent round-robin
    assert sum(1 for s in result.samples if s.route == "GET /health") == 19


def test_the_run_stops_at_the_time_bound_without_starting_more() -> None:
    # given requests that each take one (fake) second and a 10-second bound
    clock = FakeClock()
    sender = ScriptedSender(clock, {"GET /health": (200, None)}, {"GET /health": 1.0})
    result = run_load(
        Plan([HEALTH], concurrency=1, max_requests=1000, max_seconds=10), sender, clock=clock
    )
    # then it stopped on time, long before the request bound
    assert result.stopped_by == "time"
    assert sender.calls == 10
    assert result.elapsed_s == pytest.approx(10.0)


def test_unexpected_answers_are_counted_for_the_exit_status() -> None:
    clock = FakeClock()
    sender = ScriptedSender(
        clock,
        {"GET /health": (200, None), "GET /stats": (502, None)},
        {"GET /health": 0.001, "GET /stats": 0.001},
    )
    result = run_load(Plan([HEALTH, STATS], concurrency=2, max_requests=10), sender, clock=clock)
    assert result.unexpected == 5


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"concurrency": 0}, "--concurrency"),
        ({"max_requests": 0}, "--requests"),
        ({"max_seconds": 0}, "--seconds"),
    ],
)
def test_an_unbounded_or_empty_plan_is_refused(kwargs: dict[str, float], flag: str) -> None:
    with pytest.raises(LoadTestError, match=flag):
        Plan([HEALTH], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(LoadTestError, match="no routes"):
        Plan([])


# ------------------------------------------------------------------ report and target
def test_the_report_gives_ratios_to_the_reference_route() -> None:
    clock = FakeClock()
    sender = ScriptedSender(
        clock,
        {"GET /health": (200, None), "GET /stats": (200, None)},
        {"GET /health": 0.002, "GET /stats": 0.006},
    )
    result = run_load(Plan([HEALTH, STATS], concurrency=1, max_requests=20), sender, clock=clock)
    text = render(result)
    stats_line = next(line for line in text.splitlines() if "`GET /stats`" in line)
    assert "| 3.00 | 3.00 |" in stats_line
    assert "unexpected: 0" in text


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:3000", "http://localhost:3000/", "http://[::1]:8"]
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert require_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["https://abc.execute-api.us-east-1.amazonaws.com/v1", "http://10.0.0.1:3000"]
)
def test_anything_but_loopback_is_refused(url: str) -> None:
    with pytest.raises(LoadTestError, match="loopback"):
        require_loopback(url)


def test_the_report_lists_routes_in_plan_order_whatever_finished_first() -> None:
    # given a slow reference route that finishes after the fast one
    clock = FakeClock()
    sender = ScriptedSender(
        clock,
        {"GET /health": (200, None), "GET /stats": (200, None)},
        {"GET /health": 0.5, "GET /stats": 0.001},
    )
    result = run_load(Plan([HEALTH, STATS], concurrency=2, max_requests=2), sender, clock=clock)
    # then the table still starts with the reference route
    rows = [line for line in render(result).splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["GET /health", "GET /stats"]
