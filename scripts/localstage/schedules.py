"""Schedule events of the template: fired on demand, or on a clock compressed for demos."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from localstage.runtime import LocalRuntimeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from localstage.spec import ScheduleSpec

__all__ = [
    "AsyncInvoker",
    "CronExpression",
    "RateExpression",
    "ScheduleError",
    "ScheduleExpressionError",
    "Scheduler",
    "UnknownScheduleError",
    "parse_expression",
    "scheduled_event",
]

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_CRON = re.compile(r"^cron\((.*)\)$", re.IGNORECASE | re.DOTALL)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): index for index, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_SEARCH_YEARS = 8  # a cron with no fire time this far ahead is treated as never firing


class ScheduleError(Exception):
    """Base of the scheduler's errors."""


class ScheduleExpressionError(ScheduleError):
    """A rate() or cron() expression this scheduler cannot read."""


class UnknownScheduleError(ScheduleError):
    """No schedule has this name, and no function with schedules answers to it."""


class AsyncInvoker(Protocol):
    """What the scheduler needs from the runtime (LocalRuntime is one)."""

    region: str
    account_id: str

    def invoke_async(self, name: str, payload: bytes, *, qualifier: str | None = None) -> str:
        """Queue an Event invocation and return its request id."""
        ...


# Expressions
@dataclass(frozen=True, slots=True)
class RateExpression:
    """rate(N minute|minutes|hour|hours|day|days): every period, counted from the start."""

    seconds: int

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """One period after the moment (the previous fire, or when the schedule started)."""
        return moment + dt.timedelta(seconds=self.seconds)


def _number(token: str, names: Mapping[str, int], field: str) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ScheduleExpressionError(f"cron {field}: {token!r} is not supported")
    return int(token)


def _field(text: str, low: int, high: int, field: str, names: Mapping[str, int]) -> frozenset[int]:
    """The values one cron field allows: *, n, a-b, a/s, a-b/s, */s and lists of those."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleExpressionError(f"cron {field}: bad step in {item!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names, field), _number(last, names, field)
        else:
            start = _number(base, names, field)
            end = high if slash else start
        if not low <= start <= high or not low <= end <= high or start > end:
            raise ScheduleExpressionError(f"cron {field}: {item!r} is out of {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """AWS's six-field cron (minutes hours day-of-month month day-of-week year), in UTC.

    Supported in each field: *, numbers, a-b ranges, a/s and a-b/s steps, lists, month names
    (JAN-DEC) and day names (SUN-SAT, 1 = SUN), ? for the day field left open. Not supported:
    L, W and # (they raise ScheduleExpressionError), and time zones (ScheduleV2's
    ScheduleExpressionTimezone is ignored: every expression runs on UTC).
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None when the field is "?"
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday; None when "?"
    years: frozenset[int]

    @classmethod
    def parse(cls, body: str) -> CronExpression:
        """Read the part between the parentheses of cron(...)."""
        fields = body.split()
        if len(fields) != 6:
            raise ScheduleExpressionError(f"cron needs 6 fields, got {len(fields)}: {body!r}")
        minute, hour, day, month, weekday, year = fields
        if (day == "?") == (weekday == "?"):
            raise ScheduleExpressionError(
                "cron: exactly one of day-of-month and day-of-week must be '?'"
            )
        return cls(
            minutes=_field(minute, 0, 59, "minutes", {}),
            hours=_field(hour, 0, 23, "hours", {}),
            days_of_month=None if day == "?" else _field(day, 1, 31, "day-of-month", {}),
            months=_field(month, 1, 12, "month", _MONTHS),
            days_of_week=None if weekday == "?" else _field(weekday, 1, 7, "day-of-week", _DAYS),
            years=_field(year, 1970, 2199, "year", {}),
        )

    def _day_matches(self, day: dt.date) -> bool:
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        aws_weekday = (day.weekday() + 1) % 7 + 1  # Python's Monday=0 to AWS's Sunday=1
        return self.days_of_week is not None and aws_weekday in self.days_of_week

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first minute strictly after the moment that the expression selects (UTC)."""
        moment = moment.astimezone(dt.UTC)
        start = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.date()
        last_day = day.replace(year=min(day.year + _SEARCH_YEARS, 9999), month=1, day=1)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        while day < last_day:
            if day.year in self.years and day.month in self.months and self._day_matches(day):
                same_day = day == start.date()
                for hour in hours:
                    if same_day and hour < start.hour:
                        continue
                    for minute in minutes:
                        if same_day and hour == start.hour and minute < start.minute:
                            continue
                        return dt.datetime(
                            day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC
                        )
            day += dt.timedelta(days=1)
        raise ScheduleExpressionError("cron expression never fires in the coming years")


Expression = RateExpression | CronExpression


def parse_expression(expression: str) -> Expression:
    """Read a Schedule event's rate() or cron() expression."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate is not None:
        count, unit = int(rate.group(1)), rate.group(2).lower().rstrip("s")
        if count == 0:
            raise ScheduleExpressionError(f"{expression!r}: the rate must be positive")
        if (count == 1) != (not rate.group(2).lower().endswith("s")):
            raise ScheduleExpressionError(
                f"{expression!r}: AWS wants the singular unit for 1 and the plural otherwise"
            )
        return RateExpression(count * _UNIT_SECONDS[unit])
    cron = _CRON.match(text)
    if cron is not None:
        return CronExpression.parse(cron.group(1))
    raise ScheduleExpressionError(f"{expression!r} is neither rate(...) nor cron(...)")


def _iso_z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(
    *, rule_arn: str, region: str, account_id: str, time_utc: dt.datetime, event_id: str
) -> dict[str, Any]:
    """EventBridge's "Scheduled Event", as a Schedule rule delivers it to its target."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": _iso_z(time_utc),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def _system_clock() -> float:
    return time.time()


class Scheduler:
    """Fires the template's Schedule events at the local runtime (asynchronous invocations).

    ``fire`` sends one event now. ``run_compressed(factor)`` starts a background thread on a
    virtual clock that runs ``factor`` times faster than ``clock``: a rate(5 minutes) schedule
    fires every 5 s of real time at factor 60; cron schedules fire at their (virtual) minutes.
    The event's ``time`` is the virtual fire time. Disabled schedules fire only on demand.
    """

    def __init__(
        self,
        schedules: Sequence[ScheduleSpec],
        runtime: AsyncInvoker,
        *,
        function_names: Mapping[str, str] | None = None,
        stack_name: str = "local",
        clock: Callable[[], float] = _system_clock,
        sleep: Callable[[float], None] | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        send_to_queue: Callable[[str, bytes], str] | None = None,
    ) -> None:
        """``send_to_queue(queue logical id, body)`` fires a rule whose target is a queue."""
        self.schedules = tuple(schedules)
        self._send_to_queue = send_to_queue
        self.warnings: list[str] = []  # schedules the compressed clock cannot run
        self._expressions: dict[int, Expression | None] = {}
        for spec in self.schedules:
            try:
                self._expressions[id(spec)] = parse_expression(spec.expression)
            except ScheduleExpressionError as exc:
                # Still fireable on demand; only the compressed clock needs the expression.
                self._expressions[id(spec)] = None
                self.warnings.append(f"{spec.function}.{spec.name}: {exc}")
        self._runtime = runtime
        self._function_names = dict(function_names or {})
        self._stack_name = stack_name
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._new_id = new_id
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str]] = []  # (schedule name, request id), in firing order

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # Lookup
    def _invoke_name(self, spec: ScheduleSpec) -> str:
        return self._function_names.get(spec.function, spec.function)

    def rule_name(self, spec: ScheduleSpec) -> str:
        """The rule's local name: <stack>-<FunctionLogicalId><EventName>, as SAM names it."""
        return f"{self._stack_name}-{spec.function}{spec.name}"

    def rule_arn(self, spec: ScheduleSpec) -> str:
        """The rule's ARN, as the event's ``resources`` names it."""
        region, account = self._runtime.region, self._runtime.account_id
        return f"arn:aws:events:{region}:{account}:rule/{self.rule_name(spec)}"

    def _by_name(self, name: str) -> list[ScheduleSpec]:
        return [
            s
            for s in self.schedules
            if name in (s.name, f"{s.function}.{s.name}", f"{s.function}{s.name}")
        ]

    def find(self, name_or_function: str) -> list[ScheduleSpec]:
        """Schedules by name, or every enabled schedule of a function (logical id or name).

        A name is the event's name, ``Function.Event`` or the rule's logical id
        ``FunctionEvent``; a bare event name shared by several functions selects them all.
        """
        by_name = self._by_name(name_or_function)
        if by_name:
            return by_name
        found = [
            s
            for s in self.schedules
            if s.enabled and name_or_function in (s.function, self._invoke_name(s))
        ]
        if not found:
            raise UnknownScheduleError(f"no schedule or scheduled function {name_or_function!r}")
        return found

    # Firing
    def payload(self, spec: ScheduleSpec, when: dt.datetime) -> bytes:
        """The event a schedule delivers: its Input when set, else the Scheduled Event."""
        if spec.payload is not None:
            return json.dumps(spec.payload).encode()
        event = scheduled_event(
            rule_arn=self.rule_arn(spec),
            region=self._runtime.region,
            account_id=self._runtime.account_id,
            time_utc=when,
            event_id=self._new_id(),
        )
        return json.dumps(event).encode()

    def _fire_one(self, spec: ScheduleSpec, when: dt.datetime) -> str:
        if spec.queue is not None and self._send_to_queue is not None:
            request_id = self._send_to_queue(spec.queue, self.payload(spec, when))
        else:
            request_id = self._runtime.invoke_async(
                self._invoke_name(spec), self.payload(spec, when)
            )
        with self._lock:
            self.fired.append((spec.name, request_id))
        logger.info(
            "schedule fired",
            extra={"schedule": spec.name, "function": spec.function, "request_id": request_id},
        )
        return request_id

    def fire(self, name_or_function: str) -> list[str]:
        """Fire now, asynchronously; returns the request ids of the invocations queued."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        return [self._fire_one(spec, now) for spec in self.find(name_or_function)]

    def next_fire(self, name: str, after: dt.datetime | None = None) -> dt.datetime:
        """When a schedule fires next after a moment (now by the scheduler's clock)."""
        found = self._by_name(name)
        if not found:
            raise UnknownScheduleError(f"no schedule {name!r}")
        spec = found[0]
        moment = after or dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        return self._expression(spec).next_after(moment)

    def _expression(self, spec: ScheduleSpec) -> Expression:
        expression = self._expressions[id(spec)]
        if expression is None:
            raise ScheduleExpressionError(f"{spec.expression!r} cannot be run on a clock")
        return expression

    # Compressed clock
    def run_compressed(self, factor: float, *, limit: int | None = None) -> None:
        """Fire every enabled schedule on a clock ``factor`` times faster, in the background.

        ``limit`` ends the run after that many fires (for tests and scripted demos).
        """
        if factor <= 0:
            raise ValueError("factor must be positive")
        if self._thread is not None and self._thread.is_alive():
            raise ScheduleError("the compressed clock is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(factor, limit), name="schedules", daemon=True
        )
        self._thread.start()

    def _run(self, factor: float, limit: int | None) -> None:
        real_start = self._clock()
        virtual_start = dt.datetime.fromtimestamp(real_start, dt.UTC)

        def virtual_now() -> dt.datetime:
            return virtual_start + dt.timedelta(seconds=(self._clock() - real_start) * factor)

        pending: dict[int, tuple[dt.datetime, ScheduleSpec]] = {}
        for spec in self.schedules:
            if not spec.enabled:
                continue
            try:
                pending[id(spec)] = (self._expression(spec).next_after(virtual_start), spec)
            except ScheduleExpressionError:
                logger.warning("schedule not run on the clock", extra={"schedule": spec.name})
        fires = 0
        while pending and not self._stop.is_set():
            due_at = min(when for when, _ in pending.values())
            wait = (due_at - virtual_now()).total_seconds() / factor
            if wait > 1e-6:
                self._sleep(wait)
                continue  # re-read the clock: the sleep may have ended early
            for key, (when, spec) in sorted(pending.items(), key=lambda item: item[1][0]):
                if when > due_at or self._stop.is_set():
                    continue
                try:
                    self._fire_one(spec, when)
                except LocalRuntimeError:
                    logger.exception("schedule could not fire", extra={"schedule": spec.name})
                fires += 1
                try:
                    pending[key] = (self._expression(spec).next_after(when), spec)
                except ScheduleExpressionError:
                    del pending[key]
                if limit is not None and fires >= limit:
                    return

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a limited compressed run to end; True when it has."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self) -> None:
        """End the compressed clock (fires already queued still run)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
