"""Cron expressions: validation and next fire times. Pure functions, no Redis."""

from __future__ import annotations

import zoneinfo

from croniter import croniter

from tempotask_django.exceptions import ConfigurationError


def validate_cron(expression: str, timezone: str | None = None, *, where: str = "cron") -> None:
    """Raise ConfigurationError when ``expression`` or ``timezone`` is not usable."""
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ConfigurationError(
            f"{where}: {expression!r} is not a valid cron expression "
            "(five fields 'min hour day month weekday', six with seconds, or @hourly/@daily/...)"
        )
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where}: unknown timezone {timezone!r}") from exc
