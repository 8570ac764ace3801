"""The overview's chart: per-minute completed and failed jobs as an inline SVG, drawn on the server.

Returns plain numbers for the template; no JavaScript is needed to see it.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone

# SVG user units: one bar per minute.
WIDTH, HEIGHT, BAR_GAP = 600, 120, 2


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n that is >= ``value`` (a round top for the scale)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def build_chart(series: list[dict[str, int]]) -> dict[str, Any]:
    """Bar geometry for ``series`` (oldest minute first, as ``minute_totals`` returns it)."""
    top = nice_ceiling(max([point["completed"] + point["failed"] for point in series] + [1]))
    slot = WIDTH / max(1, len(series))
    bars = []
    for index, point in enumerate(series):
        completed_h = point["completed"] / top * HEIGHT
        failed_h = point["failed"] / top * HEIGHT
        at = timezone.localtime(datetime.datetime.fromtimestamp(point["minute"], tz=datetime.UTC))
        bars.append(
            {
                "x": round(index * slot + BAR_GAP / 2, 2),
                "width": round(slot - BAR_GAP, 2),
                "completed_y": round(HEIGHT - completed_h, 2),
                "completed_h": round(completed_h, 2),
                "failed_y": round(HEIGHT - completed_h - failed_h, 2),
                "failed_h": round(failed_h, 2),
                "label": f"{at:%H:%M}: {point['completed']} completed, {point['failed']} failed",
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "top": top,
        "bars": bars,
        "minutes": len(series),
        "completed": sum(point["completed"] for point in series),
        "failed": sum(point["failed"] for point in series),
        "retried": sum(point.get("retried", 0) for point in series),
    }
