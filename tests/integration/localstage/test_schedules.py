"""Schedule events: expressions and next fire times, on-demand firing, the compressed clock."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from localstage.runtime import LocalRuntime
from localstage.schedules import (
    CronExpression,
    RateExpression,
    ScheduleExpressionError,
    Scheduler,
    UnknownScheduleError,
    parse_expression,
)
from localstage.spec import FunctionSpec, ScheduleSpec

if TYPE_CHECKING:
    from collections.abc import Iterator

HANDLERS = Path(__file__).parent / "handlers"
EVENTS = Path(__file__).parents[3] / "events"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
RULE_PREFIX = f"arn:aws:events:{REGION}:{ACCOUNT}:rule"
PEAK = "cron(0/2 8-17 ? * MON-FRI *)"
# Monday 23 November 2026, 07:55 UTC
MONDAY_0755 = dt.datetime(2026, 11, 23, 7, 55, tzinfo=dt.UTC)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


# Expressions (pure)
@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(12 hours)", 43200),
        ("rate(1 day)", 86400),
        ("rate(7 days)", 604800),
    ],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert parse_expression(expression) == RateExpression(seconds)


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(5 minute)",
        "rate(1 minutes)",
        "rate(5 seconds)",
        "every 5 minutes",
        "cron(0 8 * * *)",
        "cron(0 8 * * MON *)",  # one of the day fields must be ?
        "cron(0 8 ? * MON#1 *)",
        "cron(0 8 L * ? *)",
        "cron(61 8 * * ? *)",
        "cron(0 8-25 * * ? *)",
        "cron(0/0 8 * * ? *)",
    ],
)
def test_unsupported_or_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleExpressionError):
        parse_expression(expression)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-11-23T07:55:00", "2026-11-23T08:00:00"),  # Monday before hours
        ("2026-11-23T08:00:00", "2026-11-23T08:02:00"),  # strictly after
        ("2026-11-23T08:01:30", "2026-11-23T08:02:00"),
        ("2026-11-23T17:58:00", "2026-11-24T08:00:00"),  # after the last slot of the day
        ("2026-11-27T17:59:00", "2026-11-30T08:00:00"),  # Friday evening to Monday
        ("2026-11-28T12:00:00", "2026-11-30T08:00:00"),  # Saturday
    ],
)
def test_peak_cron_next_fire_follows_business_hours(after: str, expected: str) -> None:
    # given the warmer's peak expression
    expression = parse_expression(PEAK)

    # when the next fire after a moment is asked for
    # then it is the next even minute between 08:00 and 17:58 UTC on a weekday
    assert isinstance(expression, CronExpression)
    assert expression.next_after(_utc(after)) == _utc(expected)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 8 ? * MON-FRI *)", "2026-11-22T09:00:00", "2026-11-23T08:00:00"),
        ("cron(15 3 1 * ? *)", "2026-11-22T09:00:00", "2026-12-01T03:15:00"),
        ("cron(0 0 29 FEB ? *)", "2026-11-22T09:00:00", "2028-02-29T00:00:00"),
        ("cron(0 12 ? * SUN,SAT 2027)", "2026-11-22T09:00:00", "2027-01-02T12:00:00"),
        ("cron(*/20 * * * ? *)", "2026-11-22T09:59:59", "2026-11-22T10:00:00"),
        ("cron(5-10/5 1 ? DEC 2 *)", "2026-11-22T09:00:00", "2026-12-07T01:05:00"),
    ],
)
def test_cron_next_fire(expression: str, after: str, expected: str) -> None:
    parsed = parse_expression(expression)
    assert isinstance(parsed, CronExpression)
    assert parsed.next_after(_utc(after)) == _utc(expected)


# Scheduler with a typed fake runtime (pure)
class _FakeInvoker:
    region = REGION
    account_id = ACCOUNT

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    def invoke_async(self, name: str, payload: bytes, *, qualifier: str | None = None) -> str:
        self.calls.append((name, json.loads(payload)))
        return f"req-{next(self._ids)}"


class _FakeClock:
    """Epoch seconds that move only when the scheduler sleeps."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


WARMER_SCHEDULES = [
    ScheduleSpec("WarmerFunction", "OffPeak", "rate(5 minutes)", None),
    ScheduleSpec("WarmerFunction", "Peak", PEAK, None),
    ScheduleSpec("WarmerFunction", "Disabled", "rate(1 minute)", {"off": True}, enabled=False),
]


def test_fire_sends_eventbridge_scheduled_event_shape() -> None:
    # given a scheduler on a fixed clock
    invoker = _FakeInvoker()
    clock = _FakeClock(MONDAY_0755)
    scheduler = Scheduler(
        WARMER_SCHEDULES,
        invoker,
        function_names={"WarmerFunction": "warmer-local"},
        stack_name="vulnstats-local",
        clock=clock,
        new_id=lambda: "event-1",
    )

    # when one schedule is fired by name
    ids = scheduler.fire("OffPeak")

    # then the function got the same shape as the recorded scheduled event in events/
    recorded = json.loads((EVENTS / "warmer_scheduled.json").read_text())
    [(name, event)] = invoker.calls
    assert ids == ["req-1"]
    assert name == "warmer-local"
    assert set(event) == set(recorded)
    assert event == {
        **recorded,
        "id": "event-1",
        "time": "2026-11-23T07:55:00Z",
        "region": REGION,
        "account": ACCOUNT,
        "resources": [f"{RULE_PREFIX}/vulnstats-local-WarmerFunctionOffPeak"],
    }


def test_fire_by_function_fires_its_enabled_schedules_and_input_replaces_the_event() -> None:
    # given three schedules of one function, one disabled with an Input
    invoker = _FakeInvoker()
    scheduler = Scheduler(WARMER_SCHEDULES, invoker)

    # when the function is fired, then the disabled schedule by name
    by_function = scheduler.fire("WarmerFunction")
    by_name = scheduler.fire("WarmerFunction.Disabled")

    # then the enabled ones fire with the default event and the named one with its Input
    assert len(by_function) == 2
    assert [call[1]["detail-type"] for call in invoker.calls[:2]] == ["Scheduled Event"] * 2
    assert by_name == ["req-3"]
    assert invoker.calls[2] == ("WarmerFunction", {"off": True})
    with pytest.raises(UnknownScheduleError):
        scheduler.fire("NoSuchSchedule")


def test_unsupported_expression_is_reported_but_still_fires_on_demand() -> None:
    # given a schedule whose cron uses L (last day of month), which this scheduler cannot run
    invoker = _FakeInvoker()
    scheduler = Scheduler([ScheduleSpec("F", "MonthEnd", "cron(0 8 L * ? *)", None)], invoker)

    # when it is fired on demand
    scheduler.fire("MonthEnd")

    # then it fired, and the scheduler says why the clock leaves it out
    assert len(invoker.calls) == 1
    assert scheduler.warnings == ["F.MonthEnd: cron day-of-month: 'L' is not supported"]
    with pytest.raises(ScheduleExpressionError):
        scheduler.next_fire("MonthEnd")


def test_next_fire_uses_the_injected_clock() -> None:
    scheduler = Scheduler(WARMER_SCHEDULES, _FakeInvoker(), clock=_FakeClock(MONDAY_0755))
    assert scheduler.next_fire("Peak") == _utc("2026-11-23T08:00:00")
    assert scheduler.next_fire("OffPeak") == _utc("2026-11-23T08:00:00")


def test_compressed_clock_fires_each_schedule_on_its_period() -> None:
    # given the warmer's schedules at 07:55 on a Monday, on a fake clock
    invoker = _FakeInvoker()
    clock = _FakeClock(MONDAY_0755)
    scheduler = Scheduler(WARMER_SCHEDULES, invoker, clock=clock, sleep=clock.sleep)

    # when time runs 60 times faster for seven fires
    scheduler.run_compressed(60, limit=7)
    assert scheduler.wait(timeout=5)

    # then each schedule fired at its own (virtual) times, the disabled one never
    fired = [(name, event["time"]) for name, event in invoker.calls]
    assert [name for name, _ in scheduler.fired] == [
        "OffPeak",
        "Peak",
        "Peak",
        "Peak",
        "OffPeak",
        "Peak",
        "Peak",
    ]
    assert [when for _, when in fired] == [
        "2026-11-23T08:00:00Z",
        "2026-11-23T08:00:00Z",
        "2026-11-23T08:02:00Z",
        "2026-11-23T08:04:00Z",
        "2026-11-23T08:05:00Z",
        "2026-11-23T08:06:00Z",
        "2026-11-23T08:08:00Z",
    ]
    # and the real waits were the virtual gaps divided by the factor
    assert sum(clock.sleeps) == pytest.approx((13 * 60) / 60)


def test_stop_ends_a_compressed_run_waiting_on_the_real_clock() -> None:
    # given a compressed run whose first fire is minutes of real time away
    scheduler = Scheduler(
        [ScheduleSpec("F", "Daily", "rate(1 day)", None)], _FakeInvoker(), clock=time.time
    )
    scheduler.run_compressed(2)

    # when it is stopped
    started = time.monotonic()
    scheduler.stop()

    # then it ends at once, having fired nothing
    assert time.monotonic() - started < 2
    assert scheduler.fired == []


# Through the local runtime
@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scheduled-events")


@pytest.fixture(scope="module")
def runtime(record_dir: Path) -> Iterator[LocalRuntime]:
    spec = FunctionSpec(
        logical_id="RecordFunction",
        function_name="gw-record",
        code_dir=HANDLERS / "gw_echo",
        handler="gw_echo_fn.handler.record",
        runtime="python3.13",
        architecture="x86_64",
        memory_mb=128,
        timeout_s=10,
        reserved_concurrency=None,
        environment={"GW_RECORD_DIR": str(record_dir)},
        layer_dirs=(),
    )
    local = LocalRuntime(
        {spec.logical_id: spec}, base_env={"AWS_REGION": REGION}, event_retry_delay_s=0.0
    )
    yield local
    local.shutdown()


def _recorded(record_dir: Path, count: int, prefix: str) -> list[dict[str, Any]]:
    """The events the function wrote whose id starts with prefix, once count of them exist."""
    deadline = time.monotonic() + 20
    while True:
        events = [json.loads(p.read_text()) for p in sorted(record_dir.glob("*.json"))]
        mine = [e for e in events if str(e.get("id", "")).startswith(prefix)]
        if len(mine) >= count or time.monotonic() > deadline:
            return sorted(mine, key=lambda e: (e["time"], e["id"]))
        threading.Event().wait(0.02)


@pytest.mark.integration
@pytest.mark.xdist_group("apigw")
def test_fired_schedule_reaches_the_function_as_a_scheduled_event(
    runtime: LocalRuntime, record_dir: Path
) -> None:
    # given a schedule of a function running in the local runtime
    schedules = [ScheduleSpec("RecordFunction", "Nightly", "cron(0 3 * * ? *)", None)]
    scheduler = Scheduler(
        schedules,
        runtime,
        function_names={"RecordFunction": "gw-record"},
        clock=_FakeClock(MONDAY_0755),
        new_id=lambda: "fired-1",
    )

    # when it is fired on demand
    [request_id] = scheduler.fire("Nightly")

    # then the handler received EventBridge's Scheduled Event
    [event] = _recorded(record_dir, 1, "fired-")
    assert request_id
    assert event == {
        "version": "0",
        "id": "fired-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-23T07:55:00Z",
        "region": REGION,
        "resources": [f"{RULE_PREFIX}/local-RecordFunctionNightly"],
        "detail": {},
    }


@pytest.mark.integration
@pytest.mark.xdist_group("apigw")
def test_compressed_clock_invokes_the_function_each_time(
    runtime: LocalRuntime, record_dir: Path
) -> None:
    # given a rate(5 minutes) schedule on a fake clock
    clock = _FakeClock(MONDAY_0755)
    ids = (f"tick-{n}" for n in itertools.count(1))
    scheduler = Scheduler(
        [ScheduleSpec("RecordFunction", "Tick", "rate(5 minutes)", None)],
        runtime,
        clock=clock,
        sleep=clock.sleep,
        new_id=lambda: next(ids),
    )

    # when the clock runs 300 times faster for four fires
    scheduler.run_compressed(300, limit=4)
    assert scheduler.wait(timeout=5)

    # then the function ran four times, five virtual minutes apart
    events = _recorded(record_dir, 4, "tick-")
    assert [e["time"] for e in events] == [
        "2026-11-23T08:00:00Z",
        "2026-11-23T08:05:00Z",
        "2026-11-23T08:10:00Z",
        "2026-11-23T08:15:00Z",
    ]
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.0, 1.0])
