"""A fund's price chart as server-rendered SVG: no script, no library, a few kB.

Three lines (forward-adjusted close and both moving averages) and a marker
on each BUY and SELL. Everything is computed here from arrays; the template
only places the string.

The chart scales with the page, so its text does too: site.css sets the axis
labels larger in viewBox units on narrower screens (11 px or more on a 360 px
phone) and hides the "minor" date ticks there. The price labels sit inside the
plot, above their grid lines, and the first and last dates are anchored to the
edges, so larger text is never clipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from html import escape

import numpy as np

WIDTH, HEIGHT = 720, 320
# Room below the plot for dates up to 26 units high (the phone size in site.css).
LEFT, RIGHT, TOP, BOTTOM = 8, 8, 12, 40
DATE_TICKS = 5  # the 2nd and 4th are "minor": hidden on phones
# Long series are thinned to about one point per horizontal pixel.
MAX_POINTS = WIDTH - LEFT - RIGHT


@dataclass(frozen=True)
class Series:
    name: str
    css: str
    values: np.ndarray


@dataclass(frozen=True)
class Marker:
    day: date
    price: float
    kind: str  # "BUY" or "SELL"


@dataclass(frozen=True)
class Scale:
    """Maps bar index and price to SVG coordinates."""

    bars: int
    low: float
    high: float

    @classmethod
    def fit(cls, bars: int, values: np.ndarray) -> Scale:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        margin = (high - low) * 0.04 or max(abs(high) * 0.04, 0.01)
        return cls(bars, low - margin, high + margin)

    def x(self, index: np.ndarray | int) -> np.ndarray:
        return LEFT + np.asarray(index) * (WIDTH - LEFT - RIGHT) / max(self.bars - 1, 1)

    def y(self, value: np.ndarray | float) -> np.ndarray:
        return TOP + (self.high - np.asarray(value)) * (HEIGHT - TOP - BOTTOM) / (
            self.high - self.low
        )


def svg(
    dates: np.ndarray,
    series: list[Series],
    markers: list[Marker],
    *,
    title: str,
    day_label: Callable[[date], str] = date.isoformat,
) -> str:
    """The chart, or an empty string when there is nothing to draw.

    `day_label` writes a date for the axis and the markers' tooltips (the
    page's language); the default is ISO.
    """
    if dates.size < 2:
        return ""
    scale = Scale.fit(dates.size, np.concatenate([s.values for s in series]))
    step = max(1, int(np.ceil(dates.size / MAX_POINTS)))
    keep = np.unique(np.r_[np.arange(0, dates.size, step), dates.size - 1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'class="chart" role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
        *_grid_lines(scale),
        *(_path(scale, line, keep) for line in series),
        *(_marker(scale, dates, marker, day_label) for marker in markers),
        *_labels(scale, dates, day_label),
        "</svg>",
    ]
    return "".join(parts)


def _path(scale: Scale, line: Series, keep: np.ndarray) -> str:
    values = line.values[keep]
    commands, pen_down = [], False
    for px, py, value in zip(scale.x(keep), scale.y(values), values, strict=True):
        if np.isnan(value):
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{px:.1f} {py:.1f}")
        pen_down = True
    path = "".join(commands)
    return f'<path class="{line.css}" d="{path}"><title>{escape(line.name)}</title></path>'


def _marker(
    scale: Scale, dates: np.ndarray, marker: Marker, day_label: Callable[[date], str]
) -> str:
    index = int(np.searchsorted(dates, np.datetime64(marker.day)))
    cx, cy = float(scale.x(index)), float(scale.y(marker.price))
    tip = -7 if marker.kind == "BUY" else 7  # an arrow up under a BUY, down over a SELL
    base = cy - tip / 2
    points = f"{cx:.1f},{cy + tip:.1f} {cx - 5:.1f},{base:.1f} {cx + 5:.1f},{base:.1f}"
    label = escape(f"{marker.kind} {day_label(marker.day)} {marker.price:.3f}")
    css = f"marker {marker.kind.lower()}"
    return f'<polygon class="{css}" points="{points}"><title>{label}</title></polygon>'


def _price_levels(scale: Scale) -> np.ndarray:
    return np.linspace(scale.low, scale.high, 5)[1:-1]


def _grid_lines(scale: Scale) -> list[str]:
    """Drawn first, under the lines."""
    out = []
    for value in _price_levels(scale):
        py = float(scale.y(value))
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
        )
    return out


def _labels(scale: Scale, dates: np.ndarray, day_label: Callable[[date], str]) -> list[str]:
    """Drawn last, over the lines (site.css gives them a white halo).

    Prices sit inside the plot, just above their grid lines. Dates go below
    it: the first anchored at its start, the last at its end, so neither runs
    off the edge whatever the text size.
    """
    out = []
    for value in _price_levels(scale):
        py = float(scale.y(value))
        out.append(f'<text class="axis price" x="{LEFT + 2}" y="{py - 5:.1f}">{value:.3f}</text>')
    ticks = np.unique(np.linspace(0, dates.size - 1, DATE_TICKS).round().astype(int))
    if ticks.size < DATE_TICKS:  # a few bars: the first and last dates only
        ticks = ticks[[0, -1]]
    for position, index in enumerate(ticks):
        px = float(scale.x(int(index)))
        anchor = "start" if position == 0 else "end" if position == len(ticks) - 1 else "middle"
        css = "axis date minor" if position % 2 else "axis date"
        day = escape(day_label(dates[index].item()))
        out.append(
            f'<text class="{css}" x="{px:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{day}</text>'
        )
    return out
