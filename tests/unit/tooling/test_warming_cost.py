"""Warming cost advice: a worked example checked by hand, schedules, settings and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from locate import samconfig_environment
from ops.aws_prices import LambdaPriceTable, PriceError, lambda_price_table
from ops.warming_cost import main
from ops.warming_model import (
    Assumptions,
    CostInputError,
    StrategyEstimate,
    TrafficProfile,
    WarmingSettings,
    advise,
    load_profile,
    provisioned_levels,
    read_settings,
    ticks_per_hour,
)

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"

# Round prices for the arithmetic only (the real table is tested apart): $0.20 per million
# requests, $0.00001 per on-demand GB-s, $0.000004 per provisioned GB-s, $0.000008 per GB-s of
# duration on provisioned concurrency, $0.000001 per GB-s of SnapStart cache, $0.0001 per GB
# restored.
PRICES = LambdaPriceTable(
    architecture="arm64",
    request_per_million_usd=0.20,
    gb_second_usd=0.00001,
    provisioned_gb_second_usd=0.000004,
    provisioned_duration_gb_second_usd=0.000008,
    snapstart_cache_gb_second_usd=0.000001,
    snapstart_restore_gb_usd=0.0001,
    source="test example",
    checked="2026-12-04",
)
# A 1 GB API function, a 0.5 GB warmer; off-peak N=2 every 5 minutes (12 ticks an hour), peak
# N=3 every 10 minutes (6 ticks an hour): both tick at least once per 10-minute idle lifetime,
# so 3 environments are held warm in every hour. Provisioned concurrency 1 in and out of
# business hours, so 1 all week.
SETTINGS = WarmingSettings(
    region="us-east-1",
    architecture="arm64",
    api_memory_mb=1024,
    warmer_memory_mb=512,
    offpeak_concurrency=2,
    peak_concurrency=3,
    offpeak_schedule="rate(5 minutes)",
    peak_schedule="rate(10 minutes)",
    provisioned_business_hours=1,
    provisioned_off_hours=1,
    business_start_cron="cron(0 8 ? * MON-FRI *)",
    business_end_cron="cron(0 18 ? * MON-FRI *)",
    cold_start_alarm_percent=20.0,
    deployed_strategy="warmer",
)
# Each request bills 100 ms; a cold start 500 ms of init (on demand) or 200 ms of restore
# (SnapStart); idle lifetime 10 minutes; burst factor 2; a ping holds 150 ms, a warmer run
# 150 + 50 = 200 ms.
ASSUMPTIONS = Assumptions(
    billed_ms=100.0,
    init_ms=500.0,
    restore_ms=200.0,
    idle_minutes=10.0,
    burst_factor=2.0,
    hold_ms=150.0,
    warmer_overhead_ms=50.0,
)


def _flat(rate: float) -> TrafficProfile:
    return TrafficProfile((rate,) * 24, (rate,) * 24, "flat")


def _by_name(estimates: tuple[StrategyEstimate, ...]) -> dict[str, StrategyEstimate]:
    return {estimate.strategy: estimate for estimate in estimates}


# ------------------------------------------------------------------ the worked examples
def test_worked_example_busy_flat_traffic_picks_no_warming() -> None:
    # given 3,600 requests every hour of the 730-hour month (2,628,000 requests)
    # when every strategy is estimated
    advice = advise(SETTINGS, _flat(3600), ASSUMPTIONS, PRICES)
    estimates = _by_name(advice.estimates)

    # then, per hour (every hour alike, so x 730 for the month):
    # - mean concurrency = 3600 x 0.1 s / 3600 = 0.1, x burst 2 = 0.2 -> 1 environment, which
    #   sees a request every second (< 10 min): it stays warm, so no cold start anywhere;
    # - requests 3600 x $0.2/1M = $0.00072; duration 3600 x 0.1 s x 1 GB = 360 GB-s x $0.00001
    #   = $0.0036.
    # none = (0.00072 + 0.0036) x 730 = $3.1536
    assert estimates["none"].requests == pytest.approx(2_628_000)
    assert estimates["none"].total_usd == pytest.approx(3.1536)
    # warmer adds 18 runs and 12 x 2 + 6 x 3 = 42 pings an hour:
    #   runs 18 x $0.2/1M = $0.0000036 + 18 x 0.2 s x 0.5 GB = 1.8 GB-s x $0.00001 = $0.000018
    #   pings 42 x $0.2/1M = $0.0000084 + 42 x 0.15 s x 1 GB = 6.3 GB-s x $0.00001 = $0.000063
    #   = $0.000093 an hour, $0.06789 a month; warmer = 3.1536 + 0.06789 = $3.22149
    assert dict(estimates["warmer"].parts)["pings"] == pytest.approx(0.0000714 * 730)
    assert estimates["warmer"].total_usd == pytest.approx(3.22149)
    # provisioned: 1 GB x 3600 s x $0.000004 = $0.0144 kept, the 360 GB-s all served by it at
    # $0.000008 = $0.00288, requests $0.00072: $0.018 an hour = $13.14
    assert estimates["provisioned"].total_usd == pytest.approx(13.14)
    # snapstart: cache 1 GB x 3600 s x $0.000001 = $0.0036 an hour = $2.628, no restore, plus
    # the on-demand $3.1536 = $5.7816
    assert estimates["snapstart"].total_usd == pytest.approx(5.7816)
    assert all(e.cold_starts == pytest.approx(0, abs=1e-9) for e in advice.estimates)
    # and with no cold start anywhere, the cheapest wins
    assert advice.pick == "none"


def test_worked_example_sparse_traffic_picks_the_warmer() -> None:
    # given 6 requests every hour: one environment, and a request every 600 s on average
    # when every strategy is estimated
    advice = advise(SETTINGS, _flat(6), ASSUMPTIONS, PRICES)
    estimates = _by_name(advice.estimates)

    # then with nothing held warm, a request is cold when the gap before it exceeds the 10 min
    # idle lifetime: for Poisson arrivals a share exp(-6 x 10 / 60) = exp(-1) = 0.367879 of
    # them, 2.207277 cold starts an hour, 36.79 % (none and snapstart alike).
    assert estimates["none"].cold_percent == pytest.approx(36.7879, abs=1e-4)
    assert estimates["none"].worst_hour_cold_percent == pytest.approx(36.7879, abs=1e-4)
    assert estimates["snapstart"].cold_starts == pytest.approx(2.207277 * 730, rel=1e-6)
    # none, an hour: requests 6 x $0.2/1M = $0.0000012; duration 6 x 0.1 s x 1 GB = 0.6 GB-s
    # x $0.00001 = $0.000006; init 2.207277 x 0.5 s x 1 GB x $0.00001 = $0.0000110364;
    # = $0.0000182364, x 730 = $0.0133126
    assert estimates["none"].total_usd == pytest.approx(0.0133126, rel=1e-5)
    # warmer: 3 environments held warm, no cold start; 0.0000012 + 0.000006 + the $0.000093
    # of runs and pings = $0.0001002 an hour = $0.073146
    assert estimates["warmer"].cold_starts == 0
    assert estimates["warmer"].total_usd == pytest.approx(0.073146)
    # provisioned: $0.0144 kept + 0.6 GB-s x $0.000008 = $0.0000048 + $0.0000012 = $0.014406
    # an hour = $10.51638
    assert estimates["provisioned"].cold_starts == 0
    assert estimates["provisioned"].total_usd == pytest.approx(10.51638)
    # snapstart: cache $0.0036 + requests and duration $0.0000072 + restores 2.207277 x 1 GB
    # x $0.0001 = $0.0002207277 + restore duration 2.207277 x 0.2 s x 1 GB x $0.00001 =
    # $0.0000044146; = $0.0038323423 an hour = $2.797610
    assert estimates["snapstart"].total_usd == pytest.approx(2.797610, rel=1e-6)
    # and none and snapstart (36.8 % > 20 %) are over budget: the cheapest within it is warmer
    assert advice.pick == "warmer"
    assert "none $0.01 with a worst hour of 36.8 %" in advice.reason


def test_a_tighter_budget_than_any_strategy_picks_the_closest() -> None:
    # given a budget no strategy with cold starts can meet, and only the two that have them
    advice = advise(
        SETTINGS,
        _flat(6),
        ASSUMPTIONS,
        PRICES,
        strategies=("none", "snapstart"),
        budget_percent=1.0,
    )

    # then the pick says so and takes the lowest worst hour, then the lowest cost
    assert advice.pick == "none"
    assert advice.reason.startswith("no strategy keeps every hour")


def test_more_environments_than_the_warmer_holds_start_cold() -> None:
    # given one busy hour a day after a quiet one: 72,000 requests x 0.1 s / 3600 s = mean
    # concurrency 2, x burst 2 = 4 environments; the warmer holds 3
    weekday = [0.0] * 24
    weekday[9] = 72_000.0
    profile = TrafficProfile(tuple(weekday), tuple(weekday), "one busy hour")

    # when the warmer is estimated
    advice = advise(SETTINGS, profile, ASSUMPTIONS, PRICES, strategies=("warmer", "none"))
    estimates = _by_name(advice.estimates)

    # then the fourth environment starts cold once a day (7 a week), with no warming all four
    assert estimates["warmer"].cold_starts == pytest.approx(7 * 730 / 168)
    assert estimates["none"].cold_starts == pytest.approx(4 * 7 * 730 / 168)


# ------------------------------------------------------------------ schedules
def test_rate_schedules_tick_evenly() -> None:
    assert ticks_per_hour("rate(5 minutes)") == (12.0,) * 168
    assert ticks_per_hour("rate(1 hour)") == (1.0,) * 168
    assert ticks_per_hour("rate(1 day)")[0] == pytest.approx(1 / 24)


def test_the_peak_cron_ticks_every_2_minutes_in_weekday_business_hours() -> None:
    ticks = ticks_per_hour("cron(0/2 8-17 ? * MON-FRI *)")

    monday, friday, saturday = 0, 4 * 24, 5 * 24
    assert ticks[monday + 8] == 30
    assert ticks[monday + 7] == 0
    assert ticks[friday + 17] == 30
    assert ticks[friday + 18] == 0
    assert ticks[saturday + 10] == 0
    assert sum(ticks) == 30 * 10 * 5


def test_a_cron_on_every_day_counts_every_day() -> None:
    ticks = ticks_per_hour("cron(15 3 * * ? *)")

    assert [day * 24 + 3 for day in range(7)] == [i for i, t in enumerate(ticks) if t]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 8 1 * ? *)", "day-of-month"),
        ("cron(0 8 ? 1-6 MON *)", "month"),
        ("cron(0 8 ? * 2#1 *)", "cannot be read"),
        ("at(2026-01-01T00:00:00)", "neither rate"),
        ("rate(0 minutes)", "positive"),
    ],
)
def test_unsupported_schedules_are_refused_by_name(expression: str, message: str) -> None:
    with pytest.raises(CostInputError, match=message) as raised:
        ticks_per_hour(expression)
    assert expression in str(raised.value)


def test_provisioned_levels_follow_the_business_hours_crons() -> None:
    # given the template's crons: up at 08:00, down at 18:00, Monday to Friday
    settings = replace(SETTINGS, provisioned_business_hours=5)

    levels = provisioned_levels(settings)

    monday, saturday = 0, 5 * 24
    assert levels[monday + 7] == 1
    assert levels[monday + 8] == 5
    assert levels[monday + 17] == 5
    assert levels[monday + 18] == 1
    assert levels[saturday + 10] == 1
    assert sum(levels) == 168 + 4 * 50


def test_a_provisioned_level_carries_over_the_end_of_the_week() -> None:
    # given a weekend level: up on Friday 20:00, down on Monday 06:00
    settings = replace(
        SETTINGS,
        provisioned_business_hours=4,
        business_start_cron="cron(0 20 ? * FRI *)",
        business_end_cron="cron(0 6 ? * MON *)",
    )

    levels = provisioned_levels(settings)

    assert levels[0] == 4  # Monday 00:00, still up from Friday
    assert levels[6] == 1
    assert levels[4 * 24 + 20] == 4
    assert levels[6 * 24 + 12] == 4


# ------------------------------------------------------------------ template and samconfig
def test_template_defaults_are_read() -> None:
    settings = read_settings(TEMPLATE, {})

    assert settings.architecture == "arm64"
    assert (settings.api_memory_mb, settings.warmer_memory_mb) == (1024, 256)
    assert (settings.offpeak_concurrency, settings.peak_concurrency) == (3, 5)
    assert settings.offpeak_schedule == "rate(5 minutes)"
    assert (settings.provisioned_business_hours, settings.provisioned_off_hours) == (5, 1)
    assert settings.cold_start_alarm_percent == 20
    assert settings.deployed_strategy == "warmer"


def test_samconfig_overrides_reach_the_settings() -> None:
    prod = samconfig_environment("prod")
    overrides, region = prod.parameter_overrides, str(prod.region)

    settings = read_settings(TEMPLATE, overrides | {"WarmerConcurrency": "7"}, region)

    assert overrides["WarmingStrategy"] == "provisioned"
    assert settings.deployed_strategy == "provisioned"
    assert settings.offpeak_concurrency == 7
    assert settings.region == "us-east-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"WarmerConcurrency": "three"}, "WarmerConcurrency='three' is not a whole number"),
        ({"WarmerPeakConcurrency": "0"}, "WarmerPeakConcurrency=0 must be >= 1"),
        ({"NoSuchParameter": "1"}, "unknown parameters NoSuchParameter"),
        ({"BusinessHoursTimezone": "Europe/Paris"}, "BusinessHoursTimezone='Europe/Paris'"),
    ],
)
def test_bad_parameters_are_refused_by_name(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(CostInputError, match=message):
        read_settings(TEMPLATE, overrides)


def test_a_template_without_the_warming_parameters_is_refused_by_name(tmp_path: Path) -> None:
    # given a template whose functions and alarm exist but declares no warmer schedule
    template = tmp_path / "template.yaml"
    template.write_text(
        "Parameters:\n"
        "  Architecture: {Type: String, Default: arm64}\n"
        "Globals:\n"
        "  Function:\n"
        "    Architectures: [!Ref Architecture]\n"
        "Resources:\n"
        "  ApiFunction: {Type: AWS::Serverless::Function, Properties: {MemorySize: 512}}\n"
        "  WarmerFunction: {Type: AWS::Serverless::Function, Properties: {MemorySize: 256}}\n"
        "  ApiColdStartRateAlarm: {Type: AWS::CloudWatch::Alarm, Properties: {Threshold: 5}}\n"
    )

    with pytest.raises(CostInputError, match="no parameter WarmerConcurrency"):
        read_settings(template, {})


# ------------------------------------------------------------------ traffic profiles
def _profile(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))
    return path


def test_the_committed_profile_has_weekdays_and_weekends() -> None:
    profile = load_profile(REPO / "docs" / "traffic-profile.json")

    assert len(profile.week()) == 168
    assert max(profile.weekday) > max(profile.weekend)


def test_one_hourly_list_serves_every_day(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, {"hourly": list(range(24))}))

    assert profile.weekday == profile.weekend == tuple(float(h) for h in range(24))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"hourly": [1] * 23}, "hourly needs 24 hourly values .UTC., got 23"),
        ({"hourly": [1] * 23 + [-5]}, r"hourly\[23\] is -5"),
        ({"weekday": [1] * 24, "weekend": ["x"] + [1] * 23}, r"weekend\[0\] is 'x', not a number"),
        ({"hourly": [True] * 24}, r"hourly\[0\] is True"),
        ({"weekday": [1] * 24}, "missing weekend"),
        ({"hourly": [1] * 24, "weekdays": [1] * 24}, r"unknown keys \['weekdays'\]"),
        ([1] * 24, "a JSON object is needed"),
    ],
)
def test_bad_profiles_are_refused_by_name(tmp_path: Path, document: object, message: str) -> None:
    with pytest.raises(CostInputError, match=message):
        load_profile(_profile(tmp_path, document))


def test_a_profile_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{hourly: [1]")

    with pytest.raises(CostInputError, match="not valid JSON"):
        load_profile(path)


# ------------------------------------------------------------------ prices
def test_the_price_table_holds_us_east_1_only() -> None:
    arm = lambda_price_table("arm64")

    assert arm.gb_second_usd < lambda_price_table("x86_64").gb_second_usd
    assert arm.source.startswith("https://aws.amazon.com/lambda/pricing/")
    with pytest.raises(PriceError, match="region 'eu-west-1'"):
        lambda_price_table("arm64", "eu-west-1")
    with pytest.raises(PriceError, match="architecture 'sparc'"):
        lambda_price_table("sparc")


# ------------------------------------------------------------------ the command
def test_the_command_on_the_default_profile_prints_the_table_and_the_pick(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--config-env", "dev"])

    out = capsys.readouterr().out
    assert code == 0
    for strategy in ("none", "warmer", "provisioned", "snapstart"):
        assert f"\n{strategy} " in out
    assert "Pick: warmer: warmer is the cheapest strategy" in out
    assert "Assumptions:" in out
    assert "checked 2026-12-04" in out


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config-env", "prod", "--json", "--parameter", "WarmerConcurrency=2"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["settings"]["deployed_strategy"] == "provisioned"
    assert report["settings"]["offpeak_concurrency"] == 2
    assert [s["strategy"] for s in report["strategies"]] == [
        "none",
        "warmer",
        "provisioned",
        "snapstart",
    ]
    assert report["pick"] in {s["strategy"] for s in report["strategies"]}
    assert report["profile"] == "docs/traffic-profile.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config-env", "stage"], "samconfig.toml has no environment 'stage'"),
        (["--parameter", "WarmerOffPeakSchedule=cron(0 8 1 * ? *)"], "day-of-month"),
        (["--parameter", "Architecture=sparc"], "Parameters.Architecture: 'sparc' is not one of"),
        (["--parameter", "WarmerConcurrency"], "is not NAME=VALUE"),
        (["--idle-minutes", "0"], "--idle-minutes and --burst-factor must be > 0"),
        (["--profile-file", "/nonexistent/profile.json"], "cannot read the traffic profile"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(argv)

    assert code == 2
    assert message in capsys.readouterr().err


def test_a_negative_assumption_is_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--billed-ms", "-1"])

    assert raised.value.code == 2
    assert "must be a number >= 0" in capsys.readouterr().err


def test_the_script_runs_on_its_own() -> None:
    # given the script as make warming-cost runs it (PYTHONPATH=scripts, no network)
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    command = [sys.executable, "-m", "ops.warming_cost", "--config-env", "dev"]

    # when it runs, and again with an unknown environment
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    failed = subprocess.run(
        [*command[:-1], "qa"], env=env, capture_output=True, text=True, check=False
    )

    # then it prints the advice (exit 0), and refuses the unknown environment by name (exit 2)
    assert done.returncode == 0, done.stderr
    assert "Pick: warmer" in done.stdout
    assert failed.returncode == 2
    expected = "samconfig.toml has no environment 'qa' (it has: default, dev, dr, prod)"
    assert expected in failed.stderr
    assert failed.stdout == ""
