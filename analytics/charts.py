"""The one builder of server-rendered SVG bar charts (the customer dashboard's usage charts; the
staff dashboard draws its charts in the browser with Chart.js from `analytics.views`).

The geometry and the bars' markup are computed here, in Python: drawn by template loops (~290
variable nodes per page) they were half of the dashboard's CPU (docs/performance.md).
`templates/accounts/_chart.html` draws the frame, axis and labels around `chart.svg_bars`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.template.defaultfilters import filesizeformat
from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import ngettext

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

    @cached_property
    def svg_bars(self) -> SafeString:
        """Every bar's `<rect>` with its tooltip, as the template wrote them (labels escaped)."""
        return mark_safe(  # noqa: S308 (numbers and escaped labels only)
            "".join(
                f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}">'
                f"<title>{escape(bar.label)}</title></rect>"
                for bar in self.bars
            )
        )


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


def usage_charts(series, labels: list[str]) -> tuple[BarChart, BarChart]:
    """The requests and traffic charts of a usage series (`analytics.selectors.usage_series`),
    one bar per point, `labels` naming each point's bucket."""
    requests = [p.requests for p in series.points]
    sizes = [p.bytes for p in series.points]
    requests_chart = bar_chart(
        requests,
        [
            ngettext("%(when)s: %(count)s request", "%(when)s: %(count)s requests", count)
            % {"when": label, "count": formats.number_format(count, force_grouping=True)}
            for count, label in zip(requests, labels, strict=True)
        ],
        labels,
        peak_label=formats.number_format(max(requests, default=0), force_grouping=True),
    )
    bytes_chart = bar_chart(
        sizes,
        [f"{label}: {filesizeformat(size)}" for size, label in zip(sizes, labels, strict=True)],
        labels,
        peak_label=filesizeformat(max(sizes, default=0)),
    )
    return requests_chart, bytes_chart
