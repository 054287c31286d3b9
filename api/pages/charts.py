"""Stacked bar charts as plain geometry for a hand-written inline SVG (no library, no CDN).

Time runs along x in fixed slots (hours, minutes); each failure code is a series, stacked.
Series colours come from CSS classes `s0`..`s6` (a colour-blind-safe palette); every chart is
also rendered as a data table for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WIDTH, HEIGHT = 320.0, 160.0
LEFT, RIGHT, TOP, BOTTOM = 24.0, 16.0, 8.0, 22.0
MAX_SERIES = 6
"""Series drawn on their own; the rest are stacked together as `other`."""


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    label: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class Chart:
    """What the `_chart.html` macro draws."""

    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[int, str, int]] = field(default_factory=list)
    """(series index, name, total)."""
    width: float = WIDTH
    height: float = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    left: float = LEFT
    right: float = WIDTH - RIGHT

    @property
    def empty(self) -> bool:
        return not self.bars


def slot_starts(now: float, step: float, slots: int) -> list[float]:
    """The start times of the last `slots` slots of `step` seconds, the current one last."""
    current = now // step * step
    return [current - step * (slots - 1 - n) for n in range(slots)]


def stacked(
    rows: Sequence[dict[str, Any]],
    time_key: str,
    starts: list[float],
    step: float,
    time_format: str,
) -> Chart:
    """A chart of `rows` ({time_key, code, count}) over the slots of `step` seconds that
    begin at `starts`."""
    placed = [
        (slot, row)
        for row in rows
        if (slot := _slot(float(row[time_key]), starts, step)) is not None
    ]
    series = _series([row for _, row in placed])
    stacks: list[list[tuple[int, int, str]]] = [[] for _ in starts]
    for slot, row in placed:
        stacks[slot].append((series[row["code"]], int(row["count"]), row["code"]))
    top = _nice(max([1, *(sum(count for _, count, _ in stack) for stack in stacks)]))
    chart = Chart(legend=_legend([row for _, row in placed], series))
    chart.y_ticks = [Tick(_y(v, top), str(v)) for v in sorted({0, top // 2, top})]
    chart.x_ticks = _x_ticks(starts, time_format)
    for n, stack in enumerate(stacks):
        chart.bars += _bars(n, len(starts), stack, top, starts[n], time_format)
    return chart


def _slot(moment: float, starts: list[float], step: float) -> int | None:
    """The slot holding `moment`, if it is on the chart."""
    n = int((moment - starts[0]) // step)
    return n if 0 <= n < len(starts) else None


def _nice(top: int) -> int:
    """An even axis maximum (so the middle tick is a whole number), at least 1."""
    return top + 1 if top > 1 and top % 2 else top


def _series(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["code"]] = totals.get(row["code"], 0) + int(row["count"])
    ranked = sorted(totals, key=lambda code: (-totals[code], code))
    return {code: min(n, MAX_SERIES) for n, code in enumerate(ranked)}


def _legend(rows: Sequence[dict[str, Any]], series: dict[str, int]) -> list[tuple[int, str, int]]:
    totals: dict[int, int] = {}
    names: dict[int, str] = {}
    for row in rows:
        n = series[row["code"]]
        totals[n] = totals.get(n, 0) + int(row["count"])
        names[n] = row["code"] if n < MAX_SERIES else "other"
    return [(n, names[n], totals[n]) for n in sorted(totals)]


def _y(value: float, top: int) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * value / top


def _slot_x(slot: int, slots: int) -> tuple[float, float]:
    """(left edge, width) of a slot."""
    width = (WIDTH - LEFT - RIGHT) / slots
    return LEFT + slot * width, width


def _bars(
    slot: int, slots: int, stack: list[tuple[int, int, str]], top: int, start: float, fmt: str
) -> list[Bar]:
    x, width = _slot_x(slot, slots)
    bars, below = [], 0
    for series, count, code in sorted(stack):
        y = _y(below + count, top)
        label = f"{_when(start, fmt)} UTC: {count} {code}"
        bars.append(Bar(x + width * 0.15, y, width * 0.7, _y(below, top) - y, series, label))
        below += count
    return bars


def _x_ticks(starts: list[float], fmt: str) -> list[Tick]:
    slots = len(starts)
    picks = sorted({0, slots // 3, 2 * slots // 3, slots - 1})
    ticks = []
    for slot in picks:
        x, width = _slot_x(slot, slots)
        ticks.append(Tick(x + width / 2, _when(starts[slot], fmt)))
    return ticks


def _when(start: float, fmt: str) -> str:
    return datetime.fromtimestamp(start, tz=UTC).strftime(fmt)
