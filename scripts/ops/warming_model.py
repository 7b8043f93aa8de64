"""The warming cost model: each strategy's monthly cost and cold-start rate on a traffic profile.

Inputs come from the template (with samconfig or command-line overrides, read through the local
stage's resolver), the traffic profile and the assumptions; `advise` estimates every strategy and
picks one. The command line (`make warming-cost`) is ops.warming_cost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from localstage.cfn import TemplateError
from localstage.intrinsics import open_template
from localstage.schedules import (
    CronExpression,
    RateExpression,
    ScheduleExpressionError,
    parse_expression,
)
from locate import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from localstage.intrinsics import Resolver
    from ops.aws_prices import LambdaPriceTable

__all__ = [
    "DEFAULT_PROFILE",
    "MONTH_HOURS",
    "STRATEGIES",
    "Advice",
    "Assumptions",
    "CostInputError",
    "StrategyEstimate",
    "TrafficProfile",
    "WarmingSettings",
    "advise",
    "load_profile",
    "provisioned_levels",
    "read_settings",
    "ticks_per_hour",
]

DEFAULT_PROFILE: Final = REPO / "docs" / "traffic-profile.json"
MONTH_HOURS: Final = 730.0  # AWS's own monthly convention (8,760 h / 12)
WEEK_HOURS: Final = 168
WEEKS_PER_MONTH: Final = MONTH_HOURS / WEEK_HOURS
STRATEGIES: Final = ("none", "warmer", "provisioned", "snapstart")
_WEEK_MINUTES: Final = WEEK_HOURS * 60
_ALL_DAYS_OF_MONTH: Final = frozenset(range(1, 32))
_ALL_MONTHS: Final = frozenset(range(1, 13))
_ALL_YEARS: Final = frozenset(range(1970, 2200))
_PROFILE_KEYS: Final = frozenset({"description", "unit", "hourly", "weekday", "weekend"})


class CostInputError(Exception):
    """An input of the estimate is missing or wrong; the message names it."""


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True, slots=True)
class WarmingSettings:
    """What the template (with samconfig overrides) says about the API and its warming."""

    region: str
    architecture: str
    api_memory_mb: int
    warmer_memory_mb: int
    offpeak_concurrency: int
    peak_concurrency: int
    offpeak_schedule: str
    peak_schedule: str
    provisioned_business_hours: int
    provisioned_off_hours: int
    business_start_cron: str
    business_end_cron: str
    cold_start_alarm_percent: float
    deployed_strategy: str


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Figures the template cannot give; defaults from docs/performance.md, all overridable."""

    billed_ms: float = 10.0  # mean billed Duration of a real request (warm /stats handler ~9.3 ms)
    init_ms: float = 520.0  # ApiFunction Init Duration, billed on each on-demand cold start
    restore_ms: float = 200.0  # SnapStart billed restore duration (not measured: no SnapStart here)
    idle_minutes: float = 10.0  # an idle environment is reclaimed after this long
    burst_factor: float = 2.0  # peak concurrency within an hour / its mean (Little's law)
    hold_ms: float = 150.0  # how long a pinged environment holds (WARM_HOLD_MS default)
    warmer_overhead_ms: float = 20.0  # a warmer run beyond the hold (measured 13-34 ms)


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """Real requests per hour of day (UTC), on weekdays and at weekends."""

    weekday: tuple[float, ...]
    weekend: tuple[float, ...]
    description: str = ""

    def week(self) -> tuple[float, ...]:
        """168 hourly rates from Monday 00:00 UTC."""
        return self.weekday * 5 + self.weekend * 2


# ------------------------------------------------------------------ results
@dataclass(frozen=True, slots=True)
class StrategyEstimate:
    """One strategy's month: USD by part, real requests and expected cold starts."""

    strategy: str
    parts: tuple[tuple[str, float], ...]
    requests: float
    cold_starts: float
    worst_hour_cold_percent: float

    @property
    def total_usd(self) -> float:
        """The month's cost, every part summed."""
        return sum(usd for _, usd in self.parts)

    @property
    def cold_percent(self) -> float:
        """Cold starts per real request over the month, in %."""
        return 100 * self.cold_starts / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Advice:
    """Every strategy's estimate, the pick and why."""

    estimates: tuple[StrategyEstimate, ...]
    pick: str
    reason: str
    budget_percent: float


# ------------------------------------------------------------------ schedules
def _expression(text: str) -> RateExpression | CronExpression:
    try:
        return parse_expression(text)
    except ScheduleExpressionError as exc:
        raise CostInputError(f"schedule {text!r} cannot be read: {exc}") from exc


def _weekly_cron(text: str) -> CronExpression:
    """A cron that repeats every week (any day of month, month and year), else CostInputError."""
    parsed = _expression(text)
    if not isinstance(parsed, CronExpression):
        raise CostInputError(f"schedule {text!r}: a cron(...) expression is needed here")
    restricted = [
        name
        for name, values, every in (
            ("day-of-month", parsed.days_of_month, _ALL_DAYS_OF_MONTH),
            ("month", parsed.months, _ALL_MONTHS),
            ("year", parsed.years, _ALL_YEARS),
        )
        if values is not None and values != every
    ]
    if restricted:
        raise CostInputError(
            f"schedule {text!r} is not supported: it restricts the {', '.join(restricted)} "
            "field, so it does not repeat every week; use '*' or '?' there"
        )
    return parsed


def _cron_fires(cron: CronExpression, day: int, hour: int) -> int:
    """Fires of the cron in one hour of the week (day 0 = Monday)."""
    aws_day = (day + 1) % 7 + 1  # Monday is 2 in AWS's 1 = Sunday numbering
    on_day = cron.days_of_week is None or aws_day in cron.days_of_week
    return len(cron.minutes) if on_day and hour in cron.hours else 0


def ticks_per_hour(text: str) -> tuple[float, ...]:
    """How often a rate() or weekly cron() schedule fires in each of the 168 hours of a week."""
    parsed = _expression(text)
    if isinstance(parsed, RateExpression):
        return (3600 / parsed.seconds,) * WEEK_HOURS
    cron = _weekly_cron(text)
    return tuple(float(_cron_fires(cron, slot // 24, slot % 24)) for slot in range(WEEK_HOURS))


def _minutes_of_week(cron: CronExpression) -> frozenset[int]:
    return frozenset(
        day * 1440 + hour * 60 + minute
        for day in range(7)
        for hour in range(24)
        if _cron_fires(cron, day, hour)
        for minute in cron.minutes
    )


def provisioned_levels(settings: WarmingSettings) -> tuple[float, ...]:
    """Mean scheduled provisioned concurrency in each hour of the week (scale-up/down crons)."""
    ups = _minutes_of_week(_weekly_cron(settings.business_start_cron))
    downs = _minutes_of_week(_weekly_cron(settings.business_end_cron))
    level = float(settings.provisioned_off_hours)
    totals = [0.0] * WEEK_HOURS
    for lap in range(2):  # the first lap only settles the level carried over the week's end
        for minute in range(_WEEK_MINUTES):
            if minute in ups:
                level = float(settings.provisioned_business_hours)
            if minute in downs:
                level = float(settings.provisioned_off_hours)
            if lap:
                totals[minute // 60] += level
    return tuple(total / 60 for total in totals)


# ------------------------------------------------------------------ template
def _whole(value: Any, where: str, minimum: int = 0) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise CostInputError(f"{where}={value!r} is not a whole number") from None
    if number < minimum:
        raise CostInputError(f"{where}={number} must be >= {minimum}")
    return number


def _resolved(template: Resolver, logical_id: str, name: str, default: Any = None) -> Any:
    """A property of a resource (Globals merged into functions), its intrinsics resolved."""
    if logical_id not in template.resources:
        raise CostInputError(f"the template has no {logical_id}")
    raw = template.function_properties(logical_id).get(name, default)
    try:
        return template.resolve(raw, f"{logical_id} {name}")
    except TemplateError as exc:
        raise CostInputError(str(exc)) from None


def read_settings(
    template_path: Path, overrides: Mapping[str, str], region: str = "us-east-1"
) -> WarmingSettings:
    """The estimate's settings: template defaults, then the overrides (samconfig, command line)."""
    try:
        # Every strategy is costed, so resources another strategy's Condition drops are read too.
        template = open_template(
            template_path, overrides=overrides, region=region, partial=True, keep_conditional=True
        )
    except TemplateError as exc:
        raise CostInputError(str(exc)) from exc
    parameters = template.parameter_texts
    timezone = parameters.get("BusinessHoursTimezone", "UTC")
    if timezone != "UTC":
        raise CostInputError(
            f"BusinessHoursTimezone={timezone!r}: the estimate reads the profile and every "
            "schedule in UTC; estimate with UTC and shift the profile instead"
        )

    def text(name: str) -> str:
        if name in template.unset:
            raise CostInputError(template.unset[name])
        if name not in parameters:
            raise CostInputError(f"the template has no parameter {name} (or it has no default)")
        return parameters[name]

    def whole(name: str, minimum: int = 1) -> int:
        return _whole(text(name), name, minimum)

    def memory(logical_id: str) -> int:
        where = f"{logical_id} MemorySize"
        return _whole(_resolved(template, logical_id, "MemorySize", 128), where, 128)

    alarm = _resolved(template, "ApiColdStartRateAlarm", "Threshold")
    try:
        alarm_percent = float(alarm)
    except (TypeError, ValueError):
        raise CostInputError(f"ApiColdStartRateAlarm Threshold={alarm!r} is not a number") from None
    architectures = _resolved(template, "ApiFunction", "Architectures", ["x86_64"])
    if not isinstance(architectures, list) or len(architectures) != 1:
        raise CostInputError(
            f"ApiFunction Architectures: {architectures!r} is not one architecture"
        )
    return WarmingSettings(
        region=region,
        architecture=str(architectures[0]),
        api_memory_mb=memory("ApiFunction"),
        warmer_memory_mb=memory("WarmerFunction"),
        offpeak_concurrency=whole("WarmerConcurrency"),
        peak_concurrency=whole("WarmerPeakConcurrency"),
        offpeak_schedule=text("WarmerOffPeakSchedule"),
        peak_schedule=text("WarmerPeakSchedule"),
        provisioned_business_hours=whole("ProvisionedConcurrencyBusinessHours"),
        provisioned_off_hours=whole("ProvisionedConcurrencyOffHours"),
        business_start_cron=text("BusinessHoursStartCron"),
        business_end_cron=text("BusinessHoursEndCron"),
        cold_start_alarm_percent=alarm_percent,
        deployed_strategy=parameters.get("WarmingStrategy", "none"),
    )


# ------------------------------------------------------------------ traffic profile
def _hours(document: Mapping[str, Any], key: str, source: str) -> tuple[float, ...]:
    values = document[key]
    if not isinstance(values, list) or len(values) != 24:
        count = len(values) if isinstance(values, list) else type(values).__name__
        raise CostInputError(f"{source}: {key} needs 24 hourly values (UTC), got {count}")
    rates: list[float] = []
    for hour, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CostInputError(f"{source}: {key}[{hour}] is {value!r}, not a number")
        if not math.isfinite(value) or value < 0:
            raise CostInputError(f"{source}: {key}[{hour}] is {value}: requests per hour >= 0")
        rates.append(float(value))
    return tuple(rates)


def load_profile(path: Path) -> TrafficProfile:
    """Read a profile: {"hourly": [24]} or {"weekday": [24], "weekend": [24]}, UTC hours."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CostInputError(f"{path}: cannot read the traffic profile ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise CostInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise CostInputError(f"{path}: a JSON object is needed")
    unknown = sorted(set(document) - _PROFILE_KEYS)
    if unknown:
        raise CostInputError(f"{path}: unknown keys {unknown} ({sorted(_PROFILE_KEYS)})")
    description = str(document.get("description", ""))
    if "hourly" in document:
        if "weekday" in document or "weekend" in document:
            raise CostInputError(f"{path}: give either hourly or weekday and weekend, not both")
        hourly = _hours(document, "hourly", str(path))
        return TrafficProfile(hourly, hourly, description)
    missing = [key for key in ("weekday", "weekend") if key not in document]
    if missing:
        raise CostInputError(f"{path}: missing {' and '.join(missing)} (or give hourly)")
    return TrafficProfile(
        _hours(document, "weekday", str(path)),
        _hours(document, "weekend", str(path)),
        description,
    )


# ------------------------------------------------------------------ the model
@dataclass(frozen=True, slots=True)
class _Hour:
    requests: float
    needed: int  # environments the hour's traffic needs at its peak
    carried: int  # environments the previous hour's traffic left warm


def _demand(week: Sequence[float], assumptions: Assumptions) -> list[_Hour]:
    def needed(rate: float) -> int:
        if rate <= 0:
            return 0
        mean_concurrency = rate * assumptions.billed_ms / 1000 / 3600  # Little's law
        return max(1, math.ceil(mean_concurrency * assumptions.burst_factor))

    idle_s = assumptions.idle_minutes * 60
    hours: list[_Hour] = []
    for slot, rate in enumerate(week):
        before = week[slot - 1]  # slot 0 follows Sunday 23:00 (the week repeats)
        envs_before = needed(before)
        # Each environment of the hour before saw a request every 3600 x envs / rate seconds;
        # it is still warm if that gap is within the idle lifetime.
        kept_alive = before > 0 and 3600 * envs_before / before <= idle_s
        hours.append(_Hour(rate, needed(rate), envs_before if kept_alive else 0))
    return hours


def _cold_starts(hour: _Hour, kept_warm: float, assumptions: Assumptions) -> float:
    """Expected cold starts in one hour with ``kept_warm`` environments held warm all along."""
    if hour.requests <= 0:
        return 0.0
    scale_up = max(0.0, hour.needed - max(kept_warm, hour.carried))
    # With nothing held warm, a request arriving after an idle gap longer than the idle
    # lifetime finds no environment: for Poisson arrivals that is a share exp(-rate x idle).
    idle_out = 0.0
    if kept_warm < 1:
        idle_out = hour.requests * math.exp(-hour.requests * assumptions.idle_minutes / 60)
    return min(hour.requests, max(scale_up, idle_out))


def _estimate(
    strategy: str, parts: dict[str, float], hours: Sequence[_Hour], colds: Sequence[float]
) -> StrategyEstimate:
    worst = max(
        (
            100 * cold / hour.requests
            for hour, cold in zip(hours, colds, strict=True)
            if hour.requests
        ),
        default=0.0,
    )
    return StrategyEstimate(
        strategy=strategy,
        parts=tuple((name, usd * WEEKS_PER_MONTH) for name, usd in parts.items()),
        requests=sum(hour.requests for hour in hours) * WEEKS_PER_MONTH,
        cold_starts=sum(colds) * WEEKS_PER_MONTH,
        worst_hour_cold_percent=worst,
    )


@dataclass(frozen=True, slots=True)
class _Model:
    settings: WarmingSettings
    assumptions: Assumptions
    prices: LambdaPriceTable
    hours: tuple[_Hour, ...]

    @property
    def api_gb(self) -> float:
        return self.settings.api_memory_mb / 1024

    def requests_usd(self, count: float) -> float:
        return count * self.prices.request_per_million_usd / 1_000_000

    def on_demand_usd(self, gb_seconds: float) -> float:
        return gb_seconds * self.prices.gb_second_usd

    def duration_gb_s(self, count: float) -> float:
        return count * self.assumptions.billed_ms / 1000 * self.api_gb

    def week_parts(self, per_hour: Callable[[_Hour, int], dict[str, float]]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for slot, hour in enumerate(self.hours):
            for name, usd in per_hour(hour, slot).items():
                totals[name] = totals.get(name, 0.0) + usd
        return totals


def _none(model: _Model) -> StrategyEstimate:
    colds = [_cold_starts(hour, 0, model.assumptions) for hour in model.hours]
    init_s = model.assumptions.init_ms / 1000

    def per_hour(hour: _Hour, slot: int) -> dict[str, float]:
        return {
            "requests": model.requests_usd(hour.requests),
            "duration": model.on_demand_usd(model.duration_gb_s(hour.requests)),
            "init": model.on_demand_usd(colds[slot] * init_s * model.api_gb),
        }

    return _estimate("none", model.week_parts(per_hour), model.hours, colds)


def _warmer(model: _Model) -> StrategyEstimate:
    settings, assumptions = model.settings, model.assumptions
    schedules = (
        (ticks_per_hour(settings.offpeak_schedule), settings.offpeak_concurrency),
        (ticks_per_hour(settings.peak_schedule), settings.peak_concurrency),
    )
    often_enough = 60 / assumptions.idle_minutes  # ticks per hour that beat the idle lifetime
    kept = [
        max((n for ticks, n in schedules if ticks[slot] >= often_enough), default=0)
        for slot in range(WEEK_HOURS)
    ]
    colds = [_cold_starts(hour, kept[slot], assumptions) for slot, hour in enumerate(model.hours)]
    init_s = assumptions.init_ms / 1000
    run_gb_s = (assumptions.hold_ms + assumptions.warmer_overhead_ms) / 1000
    run_gb_s *= settings.warmer_memory_mb / 1024
    ping_gb_s = assumptions.hold_ms / 1000 * model.api_gb

    def per_hour(hour: _Hour, slot: int) -> dict[str, float]:
        runs = sum(ticks[slot] for ticks, _ in schedules)
        pings = sum(ticks[slot] * n for ticks, n in schedules)
        return {
            "requests": model.requests_usd(hour.requests),
            "duration": model.on_demand_usd(model.duration_gb_s(hour.requests)),
            "init": model.on_demand_usd(colds[slot] * init_s * model.api_gb),
            "warmer runs": model.requests_usd(runs) + model.on_demand_usd(runs * run_gb_s),
            "pings": model.requests_usd(pings) + model.on_demand_usd(pings * ping_gb_s),
        }

    return _estimate("warmer", model.week_parts(per_hour), model.hours, colds)


def _provisioned(model: _Model) -> StrategyEstimate:
    levels = provisioned_levels(model.settings)
    colds = [
        _cold_starts(hour, levels[slot], model.assumptions) for slot, hour in enumerate(model.hours)
    ]
    prices, init_s = model.prices, model.assumptions.init_ms / 1000

    def per_hour(hour: _Hour, slot: int) -> dict[str, float]:
        # Requests spread evenly over the environments needed; those beyond the provisioned
        # level are served (and started) on demand.
        served = min(1.0, levels[slot] / hour.needed) if hour.needed else 1.0
        gb_s = model.duration_gb_s(hour.requests)
        kept_gb_s = levels[slot] * model.api_gb * 3600
        return {
            "requests": model.requests_usd(hour.requests),
            "provisioned concurrency": kept_gb_s * prices.provisioned_gb_second_usd,
            "duration (provisioned)": gb_s * served * prices.provisioned_duration_gb_second_usd,
            "duration (on-demand spill)": model.on_demand_usd(gb_s * (1 - served)),
            "init (spill)": model.on_demand_usd(colds[slot] * init_s * model.api_gb),
        }

    return _estimate("provisioned", model.week_parts(per_hour), model.hours, colds)


def _snapstart(model: _Model) -> StrategyEstimate:
    colds = [_cold_starts(hour, 0, model.assumptions) for hour in model.hours]
    prices, restore_s = model.prices, model.assumptions.restore_ms / 1000

    def per_hour(hour: _Hour, slot: int) -> dict[str, float]:
        return {
            "requests": model.requests_usd(hour.requests),
            "duration": model.on_demand_usd(model.duration_gb_s(hour.requests)),
            "cache": model.api_gb * 3600 * prices.snapstart_cache_gb_second_usd,
            "restores": colds[slot] * model.api_gb * prices.snapstart_restore_gb_usd,
            "restore duration": model.on_demand_usd(colds[slot] * restore_s * model.api_gb),
        }

    return _estimate("snapstart", model.week_parts(per_hour), model.hours, colds)


_ESTIMATORS: Final[dict[str, Callable[[_Model], StrategyEstimate]]] = {
    "none": _none,
    "warmer": _warmer,
    "provisioned": _provisioned,
    "snapstart": _snapstart,
}


def _pick(estimates: Sequence[StrategyEstimate], budget: float) -> tuple[str, str]:
    within = [e for e in estimates if e.worst_hour_cold_percent <= budget]
    if not within:
        best = min(estimates, key=lambda e: (e.worst_hour_cold_percent, e.total_usd))
        return best.strategy, (
            f"no strategy keeps every hour at or under the {budget:g} % cold-start budget; "
            f"{best.strategy} comes closest (worst hour {best.worst_hour_cold_percent:.1f} %, "
            f"${best.total_usd:.2f}/month)"
        )
    best = min(within, key=lambda e: e.total_usd)
    reason = (
        f"{best.strategy} is the cheapest strategy (${best.total_usd:.2f}/month) whose worst "
        f"hour stays at or under the {budget:g} % cold-start budget (worst hour "
        f"{best.worst_hour_cold_percent:.1f} %, month {best.cold_percent:.2f} %)"
    )
    cheaper = [e for e in estimates if e.total_usd < best.total_usd]
    if cheaper:
        listed = ", ".join(
            f"{e.strategy} ${e.total_usd:.2f} with a worst hour of "
            f"{e.worst_hour_cold_percent:.1f} %"
            for e in cheaper
        )
        reason += f"; cheaper but over budget: {listed}"
    return best.strategy, reason


def advise(
    settings: WarmingSettings,
    profile: TrafficProfile,
    assumptions: Assumptions,
    prices: LambdaPriceTable,
    *,
    strategies: Sequence[str] = STRATEGIES,
    budget_percent: float | None = None,
) -> Advice:
    """Estimate each strategy's month and pick the cheapest within the cold-start budget."""
    if not strategies:
        raise CostInputError("no strategy to compare")
    model = _Model(settings, assumptions, prices, tuple(_demand(profile.week(), assumptions)))
    estimates = tuple(_ESTIMATORS[name](model) for name in strategies)
    budget = settings.cold_start_alarm_percent if budget_percent is None else budget_percent
    pick, reason = _pick(estimates, budget)
    return Advice(estimates, pick, reason, budget)
