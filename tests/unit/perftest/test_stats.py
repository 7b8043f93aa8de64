"""Statistics of a series: percentiles by linear interpolation, mean, sample deviation."""

from __future__ import annotations

import statistics

import pytest

from perftest.stats import percentile, share, summarize


def test_percentiles_interpolate_between_closest_ranks() -> None:
    # given ten values 10, 20, ..., 100 (positions 0..9)
    values = [float(v) for v in range(100, 0, -10)]  # unsorted on purpose
    # then p50 sits halfway between 50 and 60, p90 at 0.1 past 90, p99 near the top
    assert percentile(values, 50) == pytest.approx(55.0)
    assert percentile(values, 90) == pytest.approx(91.0)
    assert percentile(values, 99) == pytest.approx(99.1)
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 100.0


def test_a_summary_gives_every_figure() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    summary = summarize(values)
    assert summary.count == 5
    assert summary.min == 1.0
    assert summary.max == 100.0
    assert summary.p50 == 3.0
    assert summary.p90 == pytest.approx(61.6)  # 4 + 0.6 * 96
    assert summary.p99 == pytest.approx(96.16)
    assert summary.mean == 22.0
    assert summary.stdev == pytest.approx(statistics.stdev(values))


def test_an_empty_series_has_a_zero_count_and_no_figures() -> None:
    summary = summarize([])
    assert summary.to_dict() == {
        "count": 0,
        "min": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
        "mean": None,
        "stdev": None,
    }


def test_one_value_has_no_standard_deviation() -> None:
    summary = summarize([7.5])
    assert (summary.p50, summary.p99, summary.stdev) == (7.5, 7.5, None)


def test_percentile_refuses_empty_series_and_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0-100"):
        percentile([1.0], 101)


def test_share_of_nothing_is_none() -> None:
    assert share(1, 4) == 0.25
    assert share(0, 0) is None
