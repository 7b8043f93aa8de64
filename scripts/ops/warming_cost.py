"""`make warming-cost`: the warming cost model's advice (ops.warming_model) as a table or JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from locate import REPO, SAMCONFIG, TEMPLATE, LocateError, samconfig_environment
from ops.aws_prices import LambdaPriceTable, PriceError, lambda_price_table
from ops.warming_model import (
    DEFAULT_PROFILE,
    MONTH_HOURS,
    STRATEGIES,
    Advice,
    Assumptions,
    CostInputError,
    WarmingSettings,
    advise,
    load_profile,
    read_settings,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["assumption_lines", "main"]


# ------------------------------------------------------------------ output
def assumption_lines(assumptions: Assumptions, advice: Advice) -> list[str]:
    """The model's assumptions in words, for the table and the JSON output."""
    a = assumptions
    return [
        f"month = {MONTH_HOURS:g} h (8,760 h / 12), 5 weekdays and 2 weekend days a week; "
        "profile hours and schedules in UTC",
        f"a real request bills {a.billed_ms:g} ms (--billed-ms); an on-demand cold start adds "
        f"its {a.init_ms:g} ms init (--init-ms; INIT is billed since 2025-08-01), a SnapStart "
        f"one {a.restore_ms:g} ms of restore (--restore-ms) plus the restore charge",
        f"environments needed in an hour = ceil(requests x billed s / 3600 x burst "
        f"{a.burst_factor:g}) (--burst-factor), at least 1 when there is traffic; an "
        "environment of the hour before stays warm if it saw a request at least every idle "
        "lifetime; more environments than are warm cost one cold start each",
        f"an environment idles out after {a.idle_minutes:g} min (--idle-minutes; AWS documents "
        "no figure); with nothing held warm, a request after a longer gap is cold: a share "
        "exp(-requests/hour x idle/60) of the hour's requests (Poisson arrivals); Lambda's own "
        "recycling of environments is not modelled",
        f"warmer: each tick bills hold {a.hold_ms:g} ms on each pinged API environment and "
        f"hold + {a.warmer_overhead_ms:g} ms on the warmer; a schedule keeps N warm only in "
        "hours where it ticks at least once per idle lifetime; the first ticks after a deploy "
        "(their inits) are not counted",
        "provisioned: the scheduled level (business-hours crons) is paid every hour; requests "
        "beyond it (environments needed above the level) run and start on demand; target "
        "tracking above the floor is not modelled",
        "snapstart: one published version cached all month (superseded versions still cached "
        "are extra: delete them); cold starts as with none, each a restore instead of an init",
        f"pick: the cheapest strategy whose worst hour keeps cold starts at or under "
        f"{advice.budget_percent:g} % of real requests (default: the ApiColdStartRateAlarm "
        "threshold; --max-cold-rate)",
        "prices: us-east-1 list prices, first tier, no free tier, no Savings Plans",
    ]


def _table(
    settings: WarmingSettings,
    advice: Advice,
    assumptions: Assumptions,
    prices: LambdaPriceTable,
    header: str,
) -> str:
    lines = [
        header,
        f"ApiFunction {settings.api_memory_mb} MB, WarmerFunction {settings.warmer_memory_mb} MB,"
        f" {settings.architecture}, {settings.region}; deployed strategy: "
        f"{settings.deployed_strategy}",
        f"warmer N {settings.offpeak_concurrency} on {settings.offpeak_schedule}, "
        f"N {settings.peak_concurrency} on {settings.peak_schedule}; provisioned "
        f"{settings.provisioned_business_hours} from {settings.business_start_cron} to "
        f"{settings.business_end_cron}, else {settings.provisioned_off_hours}",
        f"real requests per month: {advice.estimates[0].requests:,.0f}",
        "",
        f"{'strategy':<12} {'USD/month':>10} {'cold starts':>12} {'cold rate':>10} "
        f"{'worst hour':>11}",
    ]
    for e in advice.estimates:
        lines.append(
            f"{e.strategy:<12} {e.total_usd:>10.2f} {e.cold_starts:>12,.0f} "
            f"{e.cold_percent:>9.2f}% {e.worst_hour_cold_percent:>10.1f}%"
        )
    lines += ["", "USD/month by part:"]
    for e in advice.estimates:
        parts = ", ".join(f"{name} {usd:.4f}" for name, usd in e.parts)
        lines.append(f"  {e.strategy}: {parts}")
    lines += ["", f"Pick: {advice.pick}: {advice.reason}.", ""]
    lines.append(f"Prices: {prices.architecture}, {prices.source}, checked {prices.checked}")
    lines.append("Assumptions:")
    lines += [f"  - {line}" for line in assumption_lines(assumptions, advice)]
    return "\n".join(lines)


def _json(
    settings: WarmingSettings,
    advice: Advice,
    assumptions: Assumptions,
    prices: LambdaPriceTable,
    profile_path: Path,
) -> str:
    return json.dumps(
        {
            "settings": asdict(settings),
            "assumptions": asdict(assumptions),
            "profile": _shown(profile_path),
            "month_hours": MONTH_HOURS,
            "prices": asdict(prices),
            "strategies": [
                {
                    "strategy": e.strategy,
                    "total_usd": round(e.total_usd, 6),
                    "parts_usd": {name: round(usd, 6) for name, usd in e.parts},
                    "requests": round(e.requests, 3),
                    "cold_starts": round(e.cold_starts, 3),
                    "cold_start_percent": round(e.cold_percent, 4),
                    "worst_hour_cold_start_percent": round(e.worst_hour_cold_percent, 4),
                }
                for e in advice.estimates
            ],
            "budget_percent": advice.budget_percent,
            "pick": advice.pick,
            "reason": advice.reason,
            "assumption_notes": assumption_lines(assumptions, advice),
        },
        indent=2,
    )


# ------------------------------------------------------------------ command line
def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warming_cost",
        description=__doc__,
        epilog="Exit 0 with the advice, 2 on bad input (the message names what is wrong).",
    )
    parser.add_argument(
        "--config-env",
        default=None,
        help="samconfig.toml environment whose parameter_overrides apply, e.g. dev or prod",
    )
    parser.add_argument("--profile-file", type=Path, default=DEFAULT_PROFILE)
    parser.add_argument("--template", type=Path, default=TEMPLATE, help=argparse.SUPPRESS)
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG, help=argparse.SUPPRESS)
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter after samconfig, e.g. WarmerConcurrency=2",
    )
    parser.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        help="compare only these strategies (repeat); all four by default",
    )
    parser.add_argument(
        "--max-cold-rate",
        type=_non_negative,
        help="cold-start budget in %% of real requests in the worst hour (default: the alarm's)",
    )
    defaults = Assumptions()
    for item in fields(Assumptions):
        flag = "--" + item.name.replace("_", "-")
        parser.add_argument(flag, type=_non_negative, default=getattr(defaults, item.name))
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    return parser


def _overrides(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    overrides: dict[str, str] = {}
    region = "us-east-1"
    if args.config_env is not None:
        environment = samconfig_environment(args.config_env, args.samconfig)
        overrides, region = dict(environment.parameter_overrides), environment.region or region
    for item in args.parameter:
        name, equals, value = str(item).partition("=")
        if not equals or not name:
            raise CostInputError(f"--parameter {item!r} is not NAME=VALUE")
        overrides[name] = value
    return overrides, region


def _assumptions(args: argparse.Namespace) -> Assumptions:
    base = Assumptions()
    assumptions = replace(base, **{f.name: getattr(args, f.name) for f in fields(base)})
    if assumptions.idle_minutes <= 0 or assumptions.burst_factor <= 0:
        raise CostInputError("--idle-minutes and --burst-factor must be > 0")
    return assumptions


def _shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """`make warming-cost`: print the advice; exit 2 with a message on bad input."""
    args = _parser().parse_args(argv)
    try:
        overrides, region = _overrides(args)
        settings = read_settings(args.template, overrides, region)
        prices = lambda_price_table(settings.architecture, settings.region)
        profile = load_profile(args.profile_file)
        assumptions = _assumptions(args)
        strategies = tuple(dict.fromkeys(args.strategy or STRATEGIES))
        advice = advise(
            settings,
            profile,
            assumptions,
            prices,
            strategies=strategies,
            budget_percent=args.max_cold_rate,
        )
    except (CostInputError, PriceError, LocateError) as exc:
        print(f"warming_cost: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(_json(settings, advice, assumptions, prices, args.profile_file))
    else:
        where = f"samconfig env {args.config_env!r}" if args.config_env else "template defaults"
        header = f"Warming cost advice: {where}, profile {_shown(args.profile_file)}"
        print(_table(settings, advice, assumptions, prices, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
