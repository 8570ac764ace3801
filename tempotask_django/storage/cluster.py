"""Redis Cluster: the hot paths' round trips routed by hash slot, and blocking waits across nodes.

Every queue's keys share the hash tag ``{Q}`` (storage/keys.py), so each script call and each
command of the hot paths names keys of one slot: ``ClusterCalls`` sends it to the master serving
that slot, on connections of its own per node (as storage/direct.py does for one server). A
pipeline's commands are grouped by node, sent to every node, then read: one round trip whatever the
number of nodes. A keyless command (``WAIT``) goes with the command before it, on its connection.

Redirections are followed: MOVED (a failover promoted a replica, or a slot moved) updates the slot
map and sends the command again (MOVED means it did not run), ASK sends it once to the node named,
TRYAGAIN and CLUSTERDOWN wait and send again. A connection error leaves the commands' fate unknown,
so they are sent again only when the caller says it is safe, after the slot map is read again.

``ClusterWaits`` blocks on the doorbells (wake streams) of queues living in different slots. One
XREAD cannot span slots (CROSSSLOT), so it keeps one blocking XREAD per slot in flight, each on its
own connection, and waits for the first reply with ``select``. A read still blocked when the wait
ends stays in flight and is used by the next wait (its reply is compared with the ids of that wait):
nothing is cancelled or reconnected, and no wake-up is missed, since every read asks for entries
after ids no newer than the caller's.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import RedisCluster
from redis.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MovedError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from tempotask_django.storage.direct import RESEND_PAUSES, Calls, _pack

# Seconds to wait before sending again a command refused with TRYAGAIN or CLUSTERDOWN (it did not
# run): the cluster is electing a new master or migrating a slot.
CLUSTER_RETRY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
# Redirections followed for one command before giving up (a slot map changing under our feet).
MAX_REDIRECTS = 5
# Seconds past its BLOCK time after which a blocking read still unanswered is given up: its node
# may be gone without closing the connection (a partition, a host lost), so it is read again on a
# new one instead of waiting for TCP keepalive.
STALE_READ_GRACE = 3.0


def command_slot(command: Sequence[Any]) -> int | None:
    """The hash slot of ``command``'s keys (all in one slot), None for a keyless one (WAIT, PING...)."""
    name = str(command[0]).upper()
    if name in {"EVALSHA", "EVAL", "FCALL"}:
        key = command[3] if int(command[2]) > 0 else None
    elif name in {"XREAD", "XREADGROUP"}:
        at = next(i for i, arg in enumerate(command) if str(arg).upper() == "STREAMS")
        key = command[at + 1]
    elif name in {"WAIT", "PING", "TIME", "SCRIPT"}:
        key = None
    else:
        key = command[1] if len(command) > 1 else None
    if key is None:
        return None
    return key_slot(key.encode() if isinstance(key, str) else key)


class ClusterCalls(Calls):
    """``storage.direct.DirectCalls`` for Redis Cluster: the same ``call``, ``pipeline`` and ``close``."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle: dict[str, deque[AbstractConnection]] = {}
        self._all: list[AbstractConnection] = []

    # -- nodes and connections -------------------------------------------------------------
    def node_name(self, slot: int) -> str:
        """The name (host:port) of the master serving ``slot`` in the slot map."""
        try:
            return self.client.nodes_manager.get_node_from_slot(slot).name
        except SlotNotCoveredError as exc:  # a map read while a master was down: an outage, as for callers
            self.refresh()
            raise ConnectionError(f"no node serves slot {slot} for now: {exc}") from exc

    def take(self, node_name: str) -> AbstractConnection:
        """A connection to ``node_name`` (a free one, or a new one); give it back with ``give``."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not this process's to use
            with self._lock:
                self._idle, self._all, self._pid = {}, [], os.getpid()
        try:
            return self._idle.setdefault(node_name, deque()).pop()
        except IndexError:
            node = self.client.get_node(node_name=node_name)
            if node is None:  # the node left the map meanwhile
                raise ConnectionError(f"{node_name} is no longer in the cluster's slot map") from None
            pool = self.client.get_redis_connection(node).connection_pool
            connection = pool.connection_class(**pool.connection_kwargs)
            with self._lock:
                self._all.append(connection)
            return connection

    def give(self, node_name: str, connection: AbstractConnection) -> None:
        self._idle.setdefault(node_name, deque()).append(connection)

    def refresh(self) -> None:
        """Read the slot map again (after a connection error: a master may have died)."""
        # Every node tried failed: keep the map; the next error tries again.
        with contextlib.suppress(Exception):
            self.client.nodes_manager.initialize()

    def moved(self, error: AskError) -> None:
        self.client.nodes_manager.move_slot(error)

    def close(self) -> None:
        with self._lock:
            connections, self._all, self._idle = self._all, [], {}
        for connection in connections:
            connection.disconnect()

    # -- round trips -----------------------------------------------------------------------
    def pipeline(self, commands: Sequence[Sequence[Any]], *, resend: bool = False) -> list[Any]:
        """Run ``commands`` in one round trip (one per node, in parallel); their replies in order.

        Commands refused by a redirection or a cluster in transition are sent again (they did not
        run); after a connection error, only with ``resend`` (up to len(RESEND_PAUSES) times)."""
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        lost_connections = 0
        busy_pauses = iter(CLUSTER_RETRY_PAUSES)
        redirects = unrouted = 0
        while todo:
            try:
                groups = self._route(commands, todo)
            except ConnectionError:  # no node serves a slot for now: nothing was sent
                if unrouted >= len(RESEND_PAUSES):
                    raise
                time.sleep(RESEND_PAUSES[unrouted])
                unrouted += 1
                continue
            outcome = self._round(commands, groups, replies)
            todo = sorted(outcome.again + outcome.lost)
            if outcome.lost:
                if not resend or lost_connections >= len(RESEND_PAUSES):
                    raise outcome.error or ConnectionError("lost the connection to a cluster node")
                time.sleep(RESEND_PAUSES[lost_connections])
                lost_connections += 1
                self.refresh()
            elif outcome.busy:
                pause = next(busy_pauses, None)
                if pause is None:
                    for i in outcome.again:
                        replies[i] = outcome.busy
                    return replies
                time.sleep(pause)
            elif outcome.again:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    for i in outcome.again:
                        replies[i] = ResponseError("too many cluster redirections")
                    return replies
        return replies

    def _route(self, commands: Sequence[Sequence[Any]], todo: list[int]) -> dict[str, list[int]]:
        """Group the commands to send by node, in order; a keyless one follows the command before it."""
        groups: dict[str, list[int]] = {}
        node = None
        for i in todo:
            slot = command_slot(commands[i])
            if slot is not None:
                node = self.node_name(slot)
            elif node is None:
                node = self.client.get_default_node().name
            groups.setdefault(node, []).append(i)
        return groups

    def _round(self, commands: Sequence[Sequence[Any]], groups: dict[str, list[int]], replies: list[Any]) -> _Round:
        outcome = _Round()
        sent: list[tuple[str, AbstractConnection, list[int]]] = []
        for node, members in groups.items():
            connection = self.take(node)
            try:
                connection.send_packed_command(_pack(connection, [commands[i] for i in members]))
            except (ConnectionError, TimeoutError) as exc:
                connection.disconnect()
                self.give(node, connection)
                outcome.lose(members, exc)
                continue
            sent.append((node, connection, members))
        for node, connection, members in sent:
            try:
                for n, i in enumerate(members):
                    try:
                        replies[i] = connection.read_response()
                    except (ConnectionError, TimeoutError) as exc:
                        connection.disconnect()  # a reply may still be on its way: never read it
                        outcome.lose(members[n:], exc)
                        break
                    except ResponseError as exc:
                        replies[i] = exc
                        self._refused(commands[i], i, exc, replies, outcome)
            finally:
                self.give(node, connection)
        # A keyless command (WAIT) sent again goes with the command before it, on its new node.
        for i in list(outcome.again):
            following = i + 1
            while following < len(commands) and command_slot(commands[following]) is None:
                if following not in outcome.again and following not in outcome.lost:
                    outcome.again.append(following)
                following += 1
        return outcome

    def _refused(
        self, command: Sequence[Any], i: int, error: ResponseError, replies: list[Any], outcome: _Round
    ) -> None:
        """A refused command: sent again when the refusal says it did not run and may run elsewhere."""
        if isinstance(error, MovedError):
            self.moved(error)
            outcome.again.append(i)
        elif isinstance(error, AskError):  # a slot migrating: this one command goes to the node named
            replies[i] = self._ask(command, error)
        elif isinstance(error, TryAgainError | ClusterDownError):
            outcome.again.append(i)
            outcome.busy = error

    def _ask(self, command: Sequence[Any], error: AskError) -> Any:
        node = f"{error.host}:{error.port}"
        connection = self.take(node)
        try:
            connection.send_packed_command(_pack(connection, [("ASKING",), command]))
            connection.read_response()
            try:
                return connection.read_response()
            except ResponseError as exc:
                return exc
        except (ConnectionError, TimeoutError):
            connection.disconnect()
            raise
        finally:
            self.give(node, connection)


@dataclass
class _Round:
    again: list[int] = field(default_factory=list)  # refused without running: send again
    lost: list[int] = field(default_factory=list)  # their fate unknown (a connection error)
    error: Exception | None = None
    busy: ResponseError | None = None  # TRYAGAIN or CLUSTERDOWN seen

    def lose(self, members: list[int], error: Exception) -> None:
        self.lost.extend(members)
        self.error = error


def stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = str(value).partition("-")
    return int(ms or 0), int(seq or 0)


@dataclass
class _Read:
    """One blocking XREAD in flight on a slot's own connection."""

    node: str
    connection: AbstractConnection
    keys: tuple[str, ...]
    in_flight: bool = False
    due: float = 0.0  # when its reply is due at the latest (monotonic clock)


class ClusterWaits:
    """Blocking waits on wake streams of several slots (see the module's docstring)."""

    def __init__(self, calls: ClusterCalls) -> None:
        self.calls = calls
        self._local = threading.local()

    def _reads(self) -> dict[int, _Read]:
        reads = getattr(self._local, "reads", None)
        if reads is None or self._local.pid != os.getpid():
            reads = self._local.reads = {}
            self._local.pid = os.getpid()
        return reads

    def wait(self, streams: dict[str, str], timeout_ms: int) -> bool:
        """Block until a stream of ``streams`` (key -> last id seen) has a newer entry, or the timeout.
        Returns True when one has."""
        deadline = time.monotonic() + timeout_ms / 1000
        groups: dict[int, list[str]] = {}
        for key in streams:
            groups.setdefault(key_slot(key.encode()), []).append(key)
        reads = self._reads()
        try:
            while True:
                remaining = deadline - time.monotonic()
                for slot, keys in groups.items():
                    self._send(reads, slot, tuple(keys), streams, remaining)
                ready = self._ready([reads[slot] for slot in groups], remaining)
                if ready is None:
                    return False
                woken = False
                for read in ready:
                    woken = self._newer(self._receive(reads, read), streams) or woken
                if woken:
                    return True
        except (ConnectionError, TimeoutError):
            self.calls.refresh()
            raise

    def _send(
        self, reads: dict[int, _Read], slot: int, keys: tuple[str, ...], streams: dict[str, str], seconds: float
    ) -> None:
        node = self.calls.node_name(slot)
        read = reads.get(slot)
        stale = read is not None and read.in_flight and time.monotonic() > read.due + STALE_READ_GRACE
        if read is not None and (read.node != node or read.keys != keys or stale):  # moved, other queues, silent
            read.connection.disconnect()
            read = None
        if read is None:
            read = reads[slot] = _Read(node, self.calls.take(node), keys)
        if read.in_flight or seconds <= 0:
            return
        block_ms = max(1, int(seconds * 1000))
        command = ("XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *keys, *(streams[k] for k in keys))
        try:
            read.connection.send_packed_command(_pack(read.connection, [command]))
        except (ConnectionError, TimeoutError):
            self._drop(reads, read)
            raise
        read.in_flight = True
        read.due = time.monotonic() + block_ms / 1000

    @staticmethod
    def _ready(reads: list[_Read], remaining: float) -> list[_Read] | None:
        """The reads whose reply has arrived, waiting ``remaining`` seconds at most; None after that."""
        waiting = [read for read in reads if read.in_flight]
        if not waiting:
            return None
        pending = [read for read in waiting if getattr(read.connection._sock, "pending", lambda: 0)()]  # TLS buffer
        if pending:
            return pending
        if remaining <= 0:
            return None
        sockets: dict[Any, _Read] = {read.connection._sock: read for read in waiting}
        readable, _, _ = select.select(list(sockets), [], [], remaining)
        if not readable:
            return None
        return [sockets[sock] for sock in readable]

    def _receive(self, reads: dict[int, _Read], read: _Read) -> Any:
        try:
            reply = read.connection.read_response()
        except ResponseError as exc:
            read.in_flight = False
            if isinstance(exc, MovedError):
                self.calls.moved(exc)
                return None
            if str(exc).startswith("UNBLOCKED"):  # its node became a replica (a failover): ask again
                self.calls.refresh()
                return None
            raise
        except (ConnectionError, TimeoutError):
            self._drop(reads, read)
            raise
        read.in_flight = False
        return reply

    @staticmethod
    def _newer(reply: Any, streams: dict[str, str]) -> bool:
        """Does an XREAD reply hold an entry newer than the caller's last id of its stream?"""
        if not reply:
            return False
        items = reply.items() if isinstance(reply, dict) else reply
        for key, entries in items:
            key = key.decode() if isinstance(key, bytes) else key
            for entry in entries or []:
                entry_id = entry[0].decode() if isinstance(entry[0], bytes) else entry[0]
                if key in streams and stream_id(entry_id) > stream_id(streams[key]):
                    return True
        return False

    @staticmethod
    def _drop(reads: dict[int, _Read], read: _Read) -> None:
        read.connection.disconnect()
        for slot, other in list(reads.items()):
            if other is read:
                del reads[slot]

    def close(self) -> None:
        for read in self._reads().values():
            read.connection.disconnect()
        self._local.reads = {}
