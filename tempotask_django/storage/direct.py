"""Round trips for the engine's hot paths, on connections kept apart from redis-py's pool.

redis-py's client takes a connection from its pool for every command: a lock, a poll for unread
data (a system call) and metrics bookkeeping, about as long as the round trip itself on a local
server. A job costs a few round trips (enqueue, claim, finish), so the scripts that make them are
sent here instead: on connections built with the pool's own class and settings (URL, password,
TLS, database, timeouts, health checks), kept on a free list, with commands packed by hiredis
when it is installed. Errors are redis-py's own (ConnectionError, TimeoutError, ResponseError...).

Everything else (the admin's reads, the management API) goes through the regular client.
"""

from __future__ import annotations

import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is an optional extra
    _hiredis_pack = None


# Seconds to wait before each resend of commands that are safe to send again: at once (a stale
# connection the server closed, a proxy that dropped one), then briefly, then once more after a pause
# long enough for a proxy or a restarting server to accept connections again.
RESEND_PAUSES = (0.0, 0.05, 0.5)


class Calls:
    """Round trips of commands: ``pipeline`` is each sender's own (DirectCalls, cluster.ClusterCalls)."""

    def pipeline(self, commands: Sequence[Sequence[Any]], *, resend: bool = False) -> list[Any]:
        raise NotImplementedError

    def call(self, *args: Any, resend: bool = False) -> Any:
        """Run one command and return its reply (raising the error it was refused with)."""
        (reply,) = self.pipeline([args], resend=resend)
        if isinstance(reply, ResponseError):
            raise reply
        return reply


class DirectCalls(Calls):
    """Sends commands on connections of its own (one per concurrent caller, reused).

    ``call(*args)`` runs one command and returns its reply (raising its error);
    ``pipeline(commands)`` runs several in one round trip and returns each reply, or the
    ResponseError a refused command got, in order.

    A connection error after the commands were sent leaves their fate unknown: Redis may have run
    them and lost only the reply. So they are sent again (``RESEND_PAUSES``) only when the caller
    says it is safe (``resend``): commands that may run twice, or scripts carrying a request id
    (see scripts.py). Anything else raises the error at once.
    """

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._pid = os.getpid()
        # deque.append and deque.pop are atomic: the free list needs no lock.
        self._idle: deque[AbstractConnection] = deque()
        self._all: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()

    def pipeline(self, commands: Sequence[Sequence[Any]], *, resend: bool = False) -> list[Any]:
        """Run ``commands`` in one round trip. With ``resend``, a connection error or a timeout
        sends them again on a new connection, up to len(RESEND_PAUSES) times; without, it raises."""
        connection = self._take()
        try:
            for pause in (*RESEND_PAUSES, None):
                try:
                    return self._round_trip(connection, commands)
                except (ConnectionError, TimeoutError):
                    connection.disconnect()  # a reply may still be on its way: never read it
                    if not resend or pause is None:
                        raise
                    time.sleep(pause)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._idle.append(connection)

    def close(self) -> None:
        """Disconnect every connection made here (they reconnect if used again)."""
        for connection in list(self._all):
            connection.disconnect()

    def _take(self) -> AbstractConnection:
        if self._pid != os.getpid():  # forked: the parent's sockets are not this process's to use
            self._idle, self._all, self._pid = deque(), weakref.WeakSet(), os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            self._all.add(connection)
            return connection

    @staticmethod
    def _round_trip(connection: AbstractConnection, commands: Sequence[Sequence[Any]]) -> list[Any]:
        connection.send_packed_command(_pack(connection, commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as exc:  # the command was refused; the connection is still in step
                replies.append(exc)
        return replies


def _pack(connection: AbstractConnection, commands: Iterable[Sequence[Any]]) -> list[bytes]:
    if _hiredis_pack is not None:
        return [b"".join([_hiredis_pack(tuple(args)) for args in commands])]
    return connection.pack_commands(commands)
