"""Inline SVG charts: every value is in a bar, a long tail is folded, nothing is fetched."""

from __future__ import annotations

import re

from perftest.charts import histogram, line_chart


def _bar_counts(svg: str) -> list[int]:
    return [int(n) for n in re.findall(r"<rect [^>]*><title>[^<]*: (\d+)", svg)]


def test_every_value_lands_in_exactly_one_bar() -> None:
    values = [float(v) for v in range(1, 51)]
    svg = histogram(values, title="Warm handler", unit="ms")
    assert sum(_bar_counts(svg)) == 50
    assert "Warm handler (n=50)" in svg


def test_a_long_tail_is_one_labelled_bar_and_still_counted() -> None:
    # given 200 warm calls near 10 ms and three cold starts near 1 s
    values = [10.0 + (i % 7) * 0.5 for i in range(200)] + [900.0, 1000.0, 1100.0]
    svg = histogram(values, title="Concurrent round trip", unit="ms")
    tail = re.search(r'class="tail"><title>above [^:]+: (\d+) \(max 1100\)', svg)
    assert tail is not None
    assert int(tail.group(1)) == 3
    assert sum(_bar_counts(svg)) == 203  # body bars plus the tail bar
    assert "(n=203)" in svg


def test_empty_series_say_so_instead_of_drawing_nothing() -> None:
    assert "no measurements" in histogram([], title="Cold start", unit="ms")
    assert "no measurements" in line_chart([], {}, title="Sweep", x_label="MB", y_label="ms")


def test_a_sweep_curve_has_a_point_per_size_and_skips_missing_ones() -> None:
    svg = line_chart(
        [512.0, 1024.0, 2048.0],
        {"cold p50": [400.0, 300.0, None], "warm p50": [8.0, 6.0, 5.0]},
        title="Memory sweep",
        x_label="memory (MB)",
        y_label="ms",
    )
    assert svg.count("<circle") == 5
    assert "cold p50: 512 memory (MB) -> 400" in svg
    assert "http" not in svg
