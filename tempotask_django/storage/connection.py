"""Redis clients built from settings, and the default store shared by a process."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError, RedisClusterException, ResponseError
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from tempotask_django.conf import Settings, get_settings
from tempotask_django.storage.memory import memory_client
from tempotask_django.storage.store import RedisStore

# Seconds between two checks, by one sentinel connection, that the sentinels still name its master.
MASTER_CHECK_INTERVAL = 1.0

_lock = threading.Lock()
_default_store: RedisStore | None = None


def make_client(settings: Settings, **overrides) -> redis.Redis:
    """A client for the queue's database (N+1 when OPTIMISE is on). Responses are decoded to str.

    Bytes that are not UTF-8 (written by another program) decode to U+FFFD instead of raising:
    a damaged record must not make every read of the queue fail. In immediate mode (MODE), a
    client of the process's in-memory Redis (storage/memory.py). In cluster mode (REDIS_MODE), a
    ``RedisCluster`` that discovers the nodes from REDIS_URL's (see ``cluster_client``).
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
    if settings.redis_mode == "cluster":
        return cluster_client(settings, options)
    if settings.redis_mode == "sentinel":
        pool: redis.ConnectionPool = sentinel_pool(settings, options)
    else:
        pool = redis.ConnectionPool.from_url(settings.redis_url, **options)
    if settings.optimise:
        pool.connection_kwargs["db"] = int(pool.connection_kwargs.get("db") or 0) + 1
    return redis.Redis(connection_pool=pool)


def cluster_client(settings: Settings, options: dict[str, Any]) -> redis.Redis:
    """A Redis Cluster client: REDIS_URL names one startup node (its password and TLS apply to
    every node), the others are discovered, and the slot map is read again after a failover.

    RedisCluster answers the commands tempotask sends through the regular client with the same
    signatures as redis.Redis (the hot paths go through storage/cluster.py), hence the cast.
    """
    try:
        client = RedisCluster.from_url(settings.redis_url, **options)  # reads the slot map now
    except RedisClusterException as exc:  # no node reachable: an outage, as for a standalone client
        raise ConnectionError(f"Redis Cluster at {settings.safe_redis_url} cannot be reached: {exc}") from exc
    return cast(redis.Redis, client)


class FailoverConnection(SentinelManagedConnection):
    """A connection to the master the sentinels name, re-resolved on every connect.

    redis-py turns READONLY (the old master, now a replica) into ConnectionError. A master that
    lost its replicas refuses writes with NOREPLICAS when ``min-replicas-to-write`` is set: that
    is the old master just after a failover, still unaware of it. Same meaning, same treatment:
    the write was refused (nothing ran), the connection is dropped, and the next connect asks the
    sentinels again, so the callers' usual retry on ConnectionError reaches the new master.
    """

    _checked_at = 0.0

    def connect(self) -> None:
        super().connect()
        self._checked_at = time.monotonic()  # the sentinels named this master just now

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock and self._master_moved():
            self.disconnect()
        # redis-py reconnects here to the last host and port, not through the sentinels: its pool
        # calls connect() first, but storage/direct.py sends on connections of its own.
        if not self._sock:
            self.connect()
        super().send_packed_command(command, check_health)

    def _master_moved(self) -> bool:
        """The sentinels name another master than this connection's (asked once per MASTER_CHECK_INTERVAL).

        The old master keeps accepting writes for seconds after a failover, with no error: writes
        that the new master never sees. Asking the sentinels bounds that window for every
        connection, idle or busy, at the cost of one sentinel round trip per interval.
        """
        now = time.monotonic()
        if now - self._checked_at < MASTER_CHECK_INTERVAL:
            return False
        self._checked_at = now
        try:
            address = self.connection_pool.get_master_address()
        except ConnectionError:  # no sentinel answers: keep the master we know; its own errors tell
            return False
        return (address[0], int(address[1])) != (self.host, int(self.port))

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if "NOREPLICAS" not in str(exc) or not self.connection_pool.is_master:  # 6.2 wraps a script's error
                raise
            self.disconnect()
            raise ConnectionError(f"The master refuses writes ({exc}): a failover is likely under way") from exc


class FailoverSSLConnection(FailoverConnection, SSLConnection):
    pass


class FailoverPool(SentinelConnectionPool):
    """A pool of connections to the master the sentinels name, counting the times they named another.

    Every connect and every master check of its connections asks the sentinels through
    ``get_master_address``: a change seen by any of them counts once. The cron beat compares the
    count between its steps: the ticks the old master answered just before it was replaced may be
    gone, and are offered again to the new one (cron/beat.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.master_changes = 0
        self._known_master: tuple[str, int] | None = None

    def get_master_address(self) -> Any:
        address = super().get_master_address()
        named = (address[0], int(address[1]))
        if self._known_master is not None and named != self._known_master:
            self.master_changes += 1
        self._known_master = named
        return address


def sentinel_pool(settings: Settings, options: dict[str, Any]) -> FailoverPool:
    """A pool of connections to the current master of SENTINEL_MASTER, as the SENTINELS report it.

    REDIS_URL gives the password, database and TLS of the master's connections (its host is not
    used). The sentinels are asked with the same timeouts and TLS, without the password.
    """
    kwargs = parse_url(settings.redis_url)
    tls = kwargs.pop("connection_class", None) is SSLConnection
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    kwargs.update(options)
    timeouts = {key: value for key, value in kwargs.items() if key.startswith("socket_")}
    tls_options = {key: value for key, value in kwargs.items() if key.startswith("ssl")}
    sentinel_kwargs = {**timeouts, **({"ssl": True, **tls_options} if tls else {})}
    manager = Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_kwargs)
    connection_class = FailoverSSLConnection if tls else FailoverConnection
    return FailoverPool(settings.sentinel_master, manager, is_master=True, connection_class=connection_class, **kwargs)


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
