"""The in-memory Redis of immediate mode: one fakeredis server per process, with Lua through lupa.

The store, its Lua scripts and the inspector run unchanged on it, so immediate mode stores, dedups,
retries and reports jobs as Redis mode does. fakeredis and lupa come with the optional extra
``tempotask-django[testing]``; without them, asking for the client raises ConfigurationError.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import redis

from tempotask_django.exceptions import ConfigurationError

MISSING_EXTRA = (
    'TEMPOTASK["MODE"] = "immediate" runs jobs on an in-memory Redis, which needs fakeredis and lupa: '
    'pip install "tempotask-django[testing]"'
)

_lock = threading.Lock()
_server: Any = None


def _shared_server() -> Any:
    """The process's fakeredis server (built on first use): every client of the process sees its data."""
    global _server
    # Imported here, not at module level: a Redis-mode process never loads fakeredis (~65 modules).
    if importlib.util.find_spec("fakeredis") is None or importlib.util.find_spec("lupa") is None:
        raise ConfigurationError(MISSING_EXTRA)
    import fakeredis

    with _lock:
        if _server is None:
            _server = fakeredis.FakeServer()
        return _server


def memory_client() -> redis.Redis:
    """A client of the process's in-memory Redis, configured as ``connection.make_client`` configures
    a real one (str replies, U+FFFD for bytes that are not UTF-8).

    RESP2, as the store speaks to a real Redis: fakeredis shapes the replies scripts get from
    XREADGROUP after the client's protocol, and only RESP2 gives them Redis's shape.
    """
    server = _shared_server()  # first: it says what to install when fakeredis is missing
    import fakeredis

    return fakeredis.FakeRedis(server=server, decode_responses=True, encoding_errors="replace", protocol=2)


def flush() -> None:
    """Empty the in-memory Redis (every key of every prefix); nothing happens when none was built."""
    with _lock:
        server = _server
    if server is not None:
        import fakeredis

        fakeredis.FakeRedis(server=server, protocol=2).flushall()
