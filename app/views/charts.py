"""Charts drawn on the server as inline SVG: no JavaScript (the CSP allows no inline script)
and nothing fetched from another site. Every text in a chart is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

BAR_COLOUR = "#337ab7"
AXIS_COLOUR = "#999"
LABEL_HEIGHT = 16  # room for the date labels under the bars


@dataclass(frozen=True)
class Bar:
    """One bar: its value, its label under the axis (may be empty), its tooltip."""

    value: int
    label: str
    tooltip: str


def bar_chart(
    bars: Sequence[Bar], *, title: str, width: int = 640, height: int = 160, css: str = ""
) -> Markup:
    """A bar chart of ``bars`` (left to right) scaled to the largest value, with the largest
    value marked on the left, each bar's label under it and its tooltip on hover. A bar of zero
    is drawn one pixel high, so the days stay visible."""
    top = max((bar.value for bar in bars), default=0)
    plot = height - LABEL_HEIGHT
    left = 8 + 7 * len(str(top))  # room for the scale's number
    slot = (width - left) / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sales-chart {escape(css)}" role="img"'
        f' width="100%" viewBox="0 0 {width} {height}"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{left - 4}" y="10" text-anchor="end" font-size="10" fill="{AXIS_COLOUR}">'
        f"{top}</text>",
        f'<line x1="{left}" y1="{plot}" x2="{width}" y2="{plot}" stroke="{AXIS_COLOUR}"/>',
    ]
    for index, bar in enumerate(bars):
        tall = max(1.0, (plot - 4) * bar.value / top) if top else 1.0
        x = left + index * slot + slot * 0.1
        parts.append(
            f'<rect class="bar" data-value="{bar.value}" x="{x:.1f}" y="{plot - tall:.1f}"'
            f' width="{slot * 0.8:.1f}" height="{tall:.1f}" fill="{BAR_COLOUR}">'
            f"<title>{escape(bar.tooltip)}</title></rect>"
        )
        if bar.label:  # the last bar's label ends at the chart's edge, the others are centred
            last = index == len(bars) - 1
            at, anchor = (x + slot * 0.8, "end") if last else (x + slot * 0.4, "middle")
            parts.append(
                f'<text x="{at:.1f}" y="{height - 3}" text-anchor="{anchor}"'
                f' font-size="10" fill="{AXIS_COLOUR}">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
