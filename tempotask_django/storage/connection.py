"""Redis clients built from settings, and the default store shared by a process."""

from __future__ import annotations

import threading
from typing import Any

import redis

from tempotask_django.conf import Settings, get_settings
from tempotask_django.storage.memory import memory_client
from tempotask_django.storage.store import RedisStore

_lock = threading.Lock()
_default_store: RedisStore | None = None


def make_client(settings: Settings, **overrides) -> redis.Redis:
    """A client for the queue's database (N+1 when OPTIMISE is on). Responses are decoded to str.

    Bytes that are not UTF-8 (written by another program) decode to U+FFFD instead of raising:
    a damaged record must not make every read of the queue fail. In immediate mode (MODE), a
    client of the process's in-memory Redis (storage/memory.py).
    """
    if settings.immediate:
        return memory_client()
    options = {
        "decode_responses": True,
        "encoding_errors": "replace",
        "health_check_interval": 30,
        "socket_keepalive": True,
    }
    options.update(overrides)
    pool = redis.ConnectionPool.from_url(settings.redis_url, **options)
    if settings.optimise:
        pool.connection_kwargs["db"] = int(pool.connection_kwargs.get("db") or 0) + 1
    return redis.Redis(connection_pool=pool)


def get_default_store() -> RedisStore:
    """The process-wide store for the current settings (built on first use, not at import)."""
    global _default_store
    with _lock:
        if _default_store is None:
            settings = get_settings()
            _default_store = RedisStore(make_client(settings), settings)
        return _default_store


def reset_default_store() -> None:
    """Forget the default store (settings changed, or a process forked)."""
    global _default_store
    with _lock:
        store, _default_store = _default_store, None
    if store is not None:
        store.close()


def reset_on_setting_changed(setting: str, **kwargs: Any) -> None:
    """Receiver for Django's setting_changed (connected in AppConfig.ready): a store built from
    the old settings is dropped."""
    if setting in {"TEMPOTASK", "TIME_ZONE"}:
        reset_default_store()
