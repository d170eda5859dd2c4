"""Line charts as inline SVG, drawn on the server: the trends page needs no script and no chart library.

One chart: runs along the x axis (oldest left), values up the y axis from zero on "nice" ticks (1, 2 or 5 times a
power of ten), one coloured line with a dot per run for each series, gaps where a run has no value, an optional
dashed threshold line, axis titles and a legend. Every dot carries its run, series and exact value in ``data-``
attributes and a tooltip, and links to the run's report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from latechunk.reporting.display import human_number

COLOURS = ("#2b6cb0", "#c05621", "#2f855a", "#b83280", "#6b46c1", "#975a16", "#2c7a7b", "#4a5568")
THRESHOLD_COLOUR = "#c53030"


@dataclass(frozen=True)
class Frame:
    """Where the plot area lies inside the SVG (pixels)."""

    width: int = 720
    height: int = 260
    left: int = 92
    right: int = 178
    top: int = 16
    bottom: int = 52

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Evenly spaced round values from at most ``low`` to at least ``high``."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(factor * power for factor in (1, 2, 2.5, 5, 10) if factor * power >= raw)
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - 1e-12 * step:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def line_chart(
    *,
    key: str,
    title: str,
    x_label: str,
    y_label: str,
    runs: list[str],
    run_labels: list[str],
    links: list[str],
    series: list[tuple[str, list[float | None]]],
    threshold: float | None = None,
    threshold_label: str = "threshold",
    frame: Frame | None = None,
) -> str:
    """The SVG of one chart; ``runs``, ``run_labels`` and ``links`` have one entry per run, as each series."""
    frame = frame or Frame()
    values = [value for _, points in series for value in points if value is not None]
    if threshold is not None:
        values.append(threshold)
    ticks = nice_ticks(min([0.0, *values]), max([0.0, *values]))  # a rate of 0.98 gets an axis up to 1
    low, high = ticks[0], ticks[-1]

    def x(position: int) -> float:
        spread = frame.plot_width / max(len(runs) - 1, 1)
        return frame.left + (position * spread if len(runs) > 1 else frame.plot_width / 2)

    def y(value: float) -> float:
        return frame.top + frame.plot_height * (1 - (value - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-{escape(key)}" width="{frame.width}" '
        f'height="{frame.height}" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    bottom, right = frame.top + frame.plot_height, frame.left + frame.plot_width
    for tick in ticks:
        parts.append(
            f'<line x1="{frame.left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e2e8f0"/>'
            f'<text x="{frame.left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(human_number(tick))}</text>"
        )
    # About six run labels ("03-01 00:10") fit under the axis; counted from the latest run, which always has one.
    every = max(1, math.ceil(len(runs) / 6))
    for position, label in enumerate(run_labels):
        if (len(runs) - 1 - position) % every == 0:
            parts.append(f'<text x="{x(position):.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">'
                         f"{escape(label)}</text>")
    parts.append(
        f'<line x1="{frame.left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#4a5568"/>'
        f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{bottom}" stroke="#4a5568"/>'
        f'<text x="{frame.left + frame.plot_width / 2:.0f}" y="{frame.height - 8}" text-anchor="middle" '
        f'class="axis">{escape(x_label)}</text>'
        f'<text transform="translate(14 {frame.top + frame.plot_height / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" class="axis">{escape(y_label)}</text>'
    )
    legend = []
    if threshold is not None:
        parts.append(
            f'<line class="threshold" data-threshold="{threshold}" x1="{frame.left}" x2="{right}" '
            f'y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="{THRESHOLD_COLOUR}" stroke-dasharray="6 4"/>'
        )
        legend.append((f"{threshold_label} {human_number(threshold)}", THRESHOLD_COLOUR, True))
    for number, (name, points) in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        legend.append((name, colour, False))
        parts.append(_line(name, points, colour, x, y))
        for position, value in enumerate(points):
            if value is None:
                continue
            parts.append(
                f'<a href="{escape(links[position])}"><circle class="point" cx="{x(position):.1f}" '
                f'cy="{y(value):.1f}" r="3.5" fill="{colour}" data-series="{escape(name)}" '
                f'data-run="{escape(runs[position])}" data-value="{value}">'
                f"<title>{escape(runs[position])}: {escape(name)} {escape(human_number(value))}</title></circle></a>"
            )
    for row, (name, colour, dashed) in enumerate(legend):
        top = frame.top + 6 + 18 * row
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(
            f'<line x1="{right + 14}" x2="{right + 34}" y1="{top}" y2="{top}" stroke="{colour}" stroke-width="2"'
            f'{dash}/><text x="{right + 40}" y="{top + 4}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _line(name: str, points: list[float | None], colour: str, x, y) -> str:
    """The series' polyline(s): a run without a value breaks the line."""
    runs_of_points: list[list[str]] = [[]]
    for position, value in enumerate(points):
        if value is None:
            runs_of_points.append([])
        else:
            runs_of_points[-1].append(f"{x(position):.1f},{y(value):.1f}")
    return "".join(
        f'<polyline data-series="{escape(name)}" points="{" ".join(run)}" fill="none" stroke="{colour}" '
        'stroke-width="2"/>'
        for run in runs_of_points if len(run) > 1
    )
