"""Medians, ratios to the ceiling, targets, and the results table (text and Markdown)."""

from __future__ import annotations

import operator
import statistics
from dataclasses import dataclass


@dataclass
class Figure:
    """One line of the results table. ``ours``/``ceiling`` hold one value per run (paired by run)."""

    name: str
    unit: str
    ours: list[float]
    ceiling: list[float] | None = None  # None: the target is absolute, not a ratio
    target: str = ""  # e.g. ">= 0.85x" or "<= 60"
    note: str = ""

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def ceiling_median(self) -> float | None:
        return statistics.median(self.ceiling) if self.ceiling else None

    @property
    def ratio(self) -> float | None:
        """Median of the per-run ratios (each run's pair was measured back to back)."""
        if not self.ceiling:
            return None
        return statistics.median(o / c for o, c in zip(self.ours, self.ceiling, strict=True) if c)

    @property
    def met(self) -> bool | None:
        if not self.target:
            return None
        op, bound = self.target.split()[:2]
        value = self.ratio if bound.endswith("x") else self.ours_median
        compare = {">=": operator.ge, "<=": operator.le, "<": operator.lt}[op]
        return compare(value, float(bound.rstrip("x")))


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit in ("jobs/s",) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def rows(figures: list[Figure]) -> list[list[str]]:
    table = [["figure", "unit", "tempotask", "ceiling", "ratio", "target", "met"]]
    for f in figures:
        met = {True: "yes", False: "NO", None: ""}[f.met]
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
        table.append(
            [f.name, f.unit, _num(f.ours_median, f.unit), _num(f.ceiling_median, f.unit), ratio, f.target, met]
        )
    return table


def text_table(figures: list[Figure]) -> str:
    table = rows(figures)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    table = rows(figures)
    lines = ["| " + " | ".join(row) + " |" for row in table]
    lines.insert(1, "|" + "|".join(" --- " for _ in table[0]) + "|")
    return "\n".join(lines)
