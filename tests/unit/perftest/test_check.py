"""The regression guard compares ratios against the floor, never absolute times."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from perftest.check import compare, paired_median, ratios, run_check
from perftest.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path


def _sample(cold_start: float) -> dict[str, Any]:
    return {
        "status": "ok",
        "cold": True,
        "init_duration_ms": cold_start - 10.0,
        "restore_duration_ms": None,
        "duration_ms": 10.0,
    }


def _block(
    cold_start: float, init: float, trip: float, warm: float, rounds: list[float] | None = None
) -> dict[str, Any]:
    def p50(value: float) -> dict[str, float]:
        return {"p50": value}

    return {
        "cold": {
            "samples": [_sample(x) for x in (rounds or [cold_start])],
            "series": {
                "cold_start_ms": p50(cold_start),
                "init_ms": p50(init),
                "round_trip_ms": p50(trip),
            },
        },
        "warm": {"series": {"handler_ms": p50(warm)}},
    }


def test_ratios_divide_ours_by_the_floor_measured_in_the_same_run() -> None:
    now = ratios(_block(300.0, 280.0, 303.0, 6.0), _block(240.0, 224.0, 250.0, 5.0))
    assert now == pytest.approx(
        {
            "cold_start_paired_median": 1.25,
            "cold_start_p50": 1.25,
            "init_p50": 1.25,
            "cold_round_trip_p50": 1.212,
            "warm_handler_p50": 1.2,
        },
        rel=1e-3,
    )


def test_a_slower_machine_that_slows_both_sides_passes() -> None:
    # given a baseline of 1.25 and a run where everything took twice as long
    baseline = {"cold_start_paired_median": 1.25}
    now = ratios(_block(600.0, 560.0, 606.0, 12.0), _block(480.0, 448.0, 500.0, 10.0))
    assert compare(now, baseline, 0.25) == []


def test_a_cold_start_ratio_past_the_margin_fails_and_says_by_how_much() -> None:
    baseline = {"cold_start_paired_median": 1.25}
    # given ours grew to 1.6 x floor: more than 1.25 x 1.25 = 1.5625
    problems = compare({"cold_start_paired_median": 1.6}, baseline, 0.25)
    assert len(problems) == 1
    assert "1.600" in problems[0]
    assert "1.562" in problems[0]
    # and just under the limit passes
    assert compare({"cold_start_paired_median": 1.56}, baseline, 0.25) == []


def test_paired_ratios_cancel_a_load_burst_that_hits_one_round() -> None:
    # given three rounds; in the second, load doubled both sides' cold starts
    ours = _block(0, 0, 0, 1, rounds=[300.0, 600.0, 310.0])["cold"]
    floor = _block(0, 0, 0, 1, rounds=[240.0, 480.0, 250.0])["cold"]
    # then every round's ratio is about 1.25 and so is their median
    assert paired_median(ours, floor) == pytest.approx(1.25)
    # and a round where one side failed is left out rather than paired with nothing
    ours["samples"][1]["status"] = "function_error"
    assert paired_median(ours, floor) == pytest.approx((1.25 + 1.24) / 2)


def test_a_missing_baseline_is_refused_before_any_stage_starts(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--write-baseline"):
        run_check(
            baseline_path=tmp_path / "absent.json",
            write_baseline=False,
            margin=None,
            rounds=1,
            count=1,
            warmup=1,
            findings=10,
            say=lambda _: None,
        )
