"""The app's own signal receivers: they only log."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("tempotask")


def log_enqueued(job_id: str, name: str, queue: str, status: str, **kwargs: Any) -> None:
    logger.debug("enqueued %s %s on %s (%s)", name, job_id, queue, status)
