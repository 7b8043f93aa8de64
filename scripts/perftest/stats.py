"""Summary statistics of a measured series: min, percentiles, max, mean and deviation."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Summary", "percentile", "share", "summarize"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks.

    The same definition as numpy's default ("linear", Hyndman and Fan type 7): p0 is the
    minimum, p100 the maximum, and p50 of an even count the mean of the middle two.
    """
    if not values:
        raise ValueError("percentile of an empty series")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one series; every figure is None for an empty series.

    ``stdev`` is the sample standard deviation (n - 1), None below two values.
    """

    count: int
    min: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None
    stdev: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        """The summary as the JSON report writes it."""
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    """Summarize a series of measurements (milliseconds, MB, ...)."""
    if not values:
        return Summary(0, None, None, None, None, None, None, None)
    return Summary(
        count=len(values),
        min=min(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=max(values),
        mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if len(values) > 1 else None,
    )


def share(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide."""
    return part / whole if whole else None
