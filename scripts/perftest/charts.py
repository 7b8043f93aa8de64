"""Inline SVG charts for the HTML report: histograms and line charts, no external resources."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Final

from perftest.stats import percentile

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["histogram", "line_chart"]

_WIDTH: Final = 560
_HEIGHT: Final = 260
_LEFT: Final = 56
_RIGHT: Final = 16
_TOP: Final = 30
_BOTTOM: Final = 46
_TAIL_W: Final = 56
_TAIL_MIN_COUNT: Final = 20
_TAIL_FACTOR: Final = 1.5
_COLOURS: Final = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df")


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str, body: list[str]) -> str:
    e = html.escape
    plot_bottom = _HEIGHT - _BOTTOM
    parts = [
        f'<svg class="chart" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{e(title)}">',
        f"<title>{e(title)}</title>",
        f'<text x="{_WIDTH / 2}" y="18" text-anchor="middle" class="t">{e(title)}</text>',
        f'<line x1="{_LEFT}" y1="{plot_bottom}" x2="{_WIDTH - _RIGHT}" y2="{plot_bottom}" '
        'class="axis"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{plot_bottom}" class="axis"/>',
        f'<text x="{(_LEFT + _WIDTH - _RIGHT) / 2}" y="{_HEIGHT - 8}" text-anchor="middle" '
        f'class="l">{e(x_label)}</text>',
        f'<text x="14" y="{(_TOP + plot_bottom) / 2}" text-anchor="middle" class="l" '
        f'transform="rotate(-90 14 {(_TOP + plot_bottom) / 2})">{e(y_label)}</text>',
        *body,
        "</svg>",
    ]
    return "\n".join(parts)


def _empty(title: str, note: str) -> str:
    e = html.escape
    return (
        f'<svg class="chart" width="{_WIDTH}" height="60" '
        f'viewBox="0 0 {_WIDTH} 60" role="img" aria-label="{e(title)}"><title>{e(title)}</title>'
        f'<text x="{_WIDTH / 2}" y="34" text-anchor="middle" class="l">{e(title)}: {e(note)}'
        "</text></svg>"
    )


def histogram(values: Sequence[float], *, title: str, unit: str, bins: int | None = None) -> str:
    """A histogram of ``values`` (count per bin); a long tail is folded into one last bar.

    When the largest value is far beyond the body (a few cold starts among hundreds of warm
    calls), the bins span min..cut (p99, or 3 x p90 if lower) and the values above are one
    separate, labelled bar, so the body stays readable and no value is dropped.
    """
    if not values:
        return _empty(title, "no measurements")
    low, high = min(values), max(values)
    tail: list[float] = []
    if len(values) >= _TAIL_MIN_COUNT:
        # p99, or three times p90 when more than 1 % of the values are in the tail
        cut = min(percentile(values, 99), 3 * percentile(values, 90))
        if cut > low and high > cut * _TAIL_FACTOR:
            tail = [v for v in values if v > cut]
            values = [v for v in values if v <= cut]
            high = cut
    count = bins or max(5, min(30, math.ceil(math.sqrt(len(values)))))
    if high == low:
        high = low + 1.0
        count = 1
    width = (high - low) / count
    counts = [0] * count
    for value in values:
        counts[min(count - 1, int((value - low) / width))] += 1
    plot_w = _WIDTH - _LEFT - _RIGHT - (_TAIL_W if tail else 0)
    plot_h = _HEIGHT - _TOP - _BOTTOM
    tallest = max([*counts, len(tail)])
    bar_w = plot_w / count
    body: list[str] = []
    for i, n in enumerate(counts):
        h = plot_h * n / tallest
        x = _LEFT + i * bar_w
        y = _TOP + plot_h - h
        start, stop = low + i * width, low + (i + 1) * width
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{_fmt(start)}-{_fmt(stop)} {html.escape(unit)}: {n}</title>'
            "</rect>"
        )
    base = _HEIGHT - _BOTTOM
    if tail:
        h = plot_h * len(tail) / tallest
        x = _LEFT + plot_w + 6
        body.append(
            f'<rect x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{_TAIL_W - 8}" '
            f'height="{h:.1f}" class="tail"><title>above {_fmt(high)} {html.escape(unit)}: '
            f"{len(tail)} (max {_fmt(max(tail))})</title></rect>"
        )
        body.append(
            f'<text x="{x + (_TAIL_W - 8) / 2:.1f}" y="{base + 14}" text-anchor="middle" '
            f'class="l">&gt;{_fmt(high)}</text>'
        )
        title = f"{title}; {len(tail)} above {_fmt(high)} in the red bar"
    for value, anchor in ((low, "start"), ((low + high) / 2, "middle"), (high, "end")):
        x = _LEFT + plot_w * (value - low) / (high - low)
        body.append(
            f'<text x="{x:.1f}" y="{base + 14}" text-anchor="{anchor}" class="l">'
            f"{_fmt(value)}</text>"
        )
    body.append(
        f'<text x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end" class="l">{tallest}</text>'
    )
    body.append(f'<text x="{_LEFT - 4}" y="{base}" text-anchor="end" class="l">0</text>')
    return _frame(f"{title} (n={len(values) + len(tail)})", unit, "invocations", body)


def line_chart(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    x_label: str,
    y_label: str,
) -> str:
    """Lines through (x, y) points per series; a None y leaves a gap. Legend top left."""
    points = [y for ys in series.values() for y in ys if y is not None]
    if not xs or not points:
        return _empty(title, "no measurements")
    x_low, x_high = min(xs), max(xs)
    y_high = max(points) * 1.1 or 1.0
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM

    def place(x: float, y: float) -> tuple[float, float]:
        return (
            _LEFT + plot_w * (x - x_low) / (x_high - x_low),
            _TOP + plot_h * (1 - y / y_high),
        )

    body: list[str] = []
    for index, (name, ys) in enumerate(series.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        coords = [place(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (x, y), (raw_x, raw_y) in zip(
            coords, [(a, b) for a, b in zip(xs, ys, strict=True) if b is not None], strict=True
        ):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>'
                f"{html.escape(name)}: {_fmt(raw_x)} {html.escape(x_label)} -> {_fmt(raw_y)}"
                "</title></circle>"
            )
        body.append(
            f'<text x="{_WIDTH - _RIGHT - 4}" y="{_TOP + 12 + 14 * index}" text-anchor="end" '
            f'class="l" style="fill:{colour}">{html.escape(name)}</text>'
        )
    base = _HEIGHT - _BOTTOM
    for x in xs:
        px, _ = place(x, 0)
        body.append(
            f'<text x="{px:.1f}" y="{base + 14}" text-anchor="middle" class="l">{_fmt(x)}</text>'
        )
    body.append(
        f'<text x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end" class="l">{_fmt(y_high)}</text>'
    )
    body.append(f'<text x="{_LEFT - 4}" y="{base}" text-anchor="end" class="l">0</text>')
    return _frame(title, x_label, y_label, body)
