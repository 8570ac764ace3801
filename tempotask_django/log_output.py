"""Where the commands' log lines go when the project has not configured logging for them."""

from __future__ import annotations

import logging
import sys

VERBOSITY_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configure_logging(verbosity: int) -> None:
    """Send the ``tempotask`` logger to stderr unless the project configured logging for it.

    A project's LOGGING wins; ``--verbosity`` other than the default 1 overrides its level.
    """
    log = logging.getLogger("tempotask")
    configured = bool(log.handlers or logging.getLogger().handlers)
    if not configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
        log.addHandler(handler)
    if not configured or verbosity != 1:
        log.setLevel(VERBOSITY_LEVELS.get(verbosity, logging.INFO))
