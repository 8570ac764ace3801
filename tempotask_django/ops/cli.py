"""Output of ``manage.py tempotask``: plain tables for people, JSON for scripts."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from tempotask_django.templatetags.tempotask_admin import age

__all__ = ["age", "as_json", "moment", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell, a header line first; ``None`` shows as a dash."""
    cells = [[str(h) for h in headers]] + [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def moment(value: datetime.datetime | None) -> str | None:
    """A time in UTC as an operator reads it in a terminal ("2026-12-04 07:30:00")."""
    return None if value is None else value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_json(value: Any) -> str:
    """Indented JSON; times as ISO 8601 strings."""
    return json.dumps(value, indent=2, sort_keys=True, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
