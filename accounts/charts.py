"""Geometry of the dashboard's server-rendered SVG bar charts (the template draws them)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 140
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    maximum: int
    first_label: str
    last_label: str
    peak_label: str


def bar_chart(values: list[int], titles: list[str], axis_labels: list[str], peak_label: str = "") -> BarChart:
    """Bars scaled to the largest value (an all-zero series draws flat 1-pixel bars). `titles` are
    the per-bar tooltips, `axis_labels` the bucket names (the first and last are drawn)."""
    count = max(len(values), 1)
    maximum = max(values, default=0)
    slot = WIDTH / count
    bars = []
    for i, (value, label) in enumerate(zip(values, titles, strict=True)):
        height = (value / maximum * (HEIGHT - 4)) if maximum else 0
        height = max(height, 1.0)
        bars.append(
            Bar(
                x=round(i * slot + GAP / 2, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(slot - GAP, 1), 2),
                height=round(height, 2),
                value=value,
                label=label,
            )
        )
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        maximum=maximum,
        first_label=axis_labels[0] if axis_labels else "",
        last_label=axis_labels[-1] if axis_labels else "",
        peak_label=peak_label,
    )
