"""A TCP proxy in front of Redis that loses replies: the fault a resend must survive.

``ReplyDroppingProxy`` forwards every byte between its clients and one Redis server. When told to,
it forwards a request, lets the server run it, throws the reply away and closes both sides: the
client sees its connection drop and cannot know whether the command ran. That is what a network
cut, a proxy restart or a failover does to a request in flight.

A request here is one chunk read from a client (a command, or a whole pipeline sent at once).
Used by the storage tests (one drop at a chosen instant) and by the dropped_replies scenario (a
share of all requests, up to a budget). Threads, not asyncio: it runs beside synchronous code.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Callable

# Bytes read at once from either side.
CHUNK = 65536


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.drop_reply = False

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class ReplyDroppingProxy:
    """Listens on ``127.0.0.1:<port>`` (a free port unless given) and forwards to ``target``.

    ``drop_next(n)`` loses the replies to the next ``n`` requests (one per connection at a time);
    ``drop_share(probability, budget, rng)`` loses each request's reply with ``probability`` until
    ``budget`` replies are lost. ``drops`` counts the replies lost, ``requests`` the requests forwarded.
    """

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._armed = 0
        self._then: Callable[[], object] | None = None
        self._probability = 0.0
        self._budget = 0
        self._rng = random.Random(0)
        self._stopped = False
        self.drops = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._accept, name="reply-dropping-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ReplyDroppingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        # close() alone does not wake a thread blocked in accept(); shutdown() does (on Linux).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ReplyDroppingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_next(self, n: int = 1, then: Callable[[], object] | None = None) -> None:
        """Lose the replies to the next ``n`` requests (whichever connections send them). ``then``
        runs once the first of them has run on the server, before its client sees the drop: what
        other clients do in that instant (a test's concurrent claim)."""
        with self._lock:
            self._armed += n
            self._then = then

    def drop_share(self, probability: float, budget: int, rng: random.Random) -> None:
        """Lose each request's reply with ``probability``, ``budget`` times at most."""
        with self._lock:
            self._probability, self._budget, self._rng = probability, budget, rng

    @property
    def budget_left(self) -> int:
        """Requests still to lose under ``drop_share`` (a request chosen may also end without a reply
        to lose: its connection closed first; ``drops`` counts the replies lost)."""
        with self._lock:
            return self._budget

    def _should_drop(self) -> bool:
        with self._lock:
            self.requests += 1
            if self._armed > 0:
                self._armed -= 1
                return True
            if self._budget > 0 and self._rng.random() < self._probability:
                self._budget -= 1
                return True
            return False

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._requests, args=(pair,), daemon=True).start()
            threading.Thread(target=self._replies, args=(pair,), daemon=True).start()

    def _requests(self, pair: _Pair) -> None:
        """Client to server. A request whose reply is to be lost is still forwarded in full."""
        try:
            while data := pair.client.recv(CHUNK):
                drop = self._should_drop()
                if drop:
                    pair.drop_reply = True  # set before the server can answer
                pair.server.sendall(data)
        except OSError:
            pass
        self._forget(pair)

    def _replies(self, pair: _Pair) -> None:
        """Server to client. The first bytes of a lost reply prove the server ran the request: then
        the reply is thrown away and the connection closed."""
        try:
            while data := pair.server.recv(CHUNK):
                if pair.drop_reply:
                    with self._lock:
                        self.drops += 1
                        then, self._then = self._then, None
                    if then is not None:
                        then()
                    break
                pair.client.sendall(data)
        except OSError:
            pass
        self._forget(pair)

    def _forget(self, pair: _Pair) -> None:
        pair.close()
        with self._lock:
            self._pairs.discard(pair)
