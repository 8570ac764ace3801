"""Lua scripts: one file per atomic state change, each prefixed with the shared lib.lua.

Scripts are read from the package once and registered per client. ``ScriptRunner`` is the one
way to run them: ``run`` for one call, ``pipeline`` for several in one round trip. Both send
EVALSHA and load a script again when Redis answers NOSCRIPT (after a restart, for instance).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError

from tempotask_django.storage.direct import DirectCalls
from tempotask_django.storage.keys import QueueKeys

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "reclaim",
    "renew",
    "sweep",
    "delete",
    "retry",
    "log",
    "progress",
    "purge",
    "forget_consumers",
    "stats",
    "cron_register",
    "cron_fire",
    "cron_control",
    "cron_define",
    "cron_delete",
    "cancel",
    "give_back",
)

# The queue's keys every script gets first, in this order (lua/lib.lua's K table and QUEUE_KEY_COUNT read them).
QUEUE_KEYS = (
    "waiting",
    "delayed",
    "processing",
    "completed",
    "failed",
    "stream",
    "wake",
    "seq",
    "paused",
    "metrics",
    "cancelled",
    "limited",
)

# One script call: (script name, queue, the script's own arguments[, its own keys: own_key(1)... in Lua]).
ScriptCall = tuple[str, str, Sequence[Any]] | tuple[str, str, Sequence[Any], Sequence[str]]


@functools.cache
def script_source(name: str) -> str:
    """The full text of script ``name``: lib.lua and limits.lua (the prelude), then ``name``.lua."""
    lua = resources.files("tempotask_django.storage") / "lua"
    return "\n".join((lua / part).read_text() for part in ("lib.lua", "limits.lua", f"{name}.lua"))


class ScriptRunner:
    """Runs the queue scripts on one client, over ``direct``'s connections.

    Every queue script gets the queue's keys (QUEUE_KEYS) as KEYS[1..n], then the keys of its own
    known before the call (a job's record, its logs...), and the queue's key base as its first
    argument: keys found only while the script runs (the jobs a claim pops, the history a trim
    deletes) are built from it (see lua/lib.lua). All of them share the queue's hash slot.
    """

    def __init__(self, client: Redis, direct: DirectCalls, prefix: str) -> None:
        self.client = client
        self.direct = direct
        self.prefix = prefix
        self._shas = {name: client.register_script(script_source(name)).sha for name in SCRIPT_NAMES}
        self._queue_heads: dict[str, tuple[tuple[str, ...], str]] = {}

    def command(self, script: str, queue: str, args: Sequence[Any], keys: Sequence[str] = ()) -> tuple[Any, ...]:
        """The EVALSHA command running ``script`` on ``queue`` with ``args`` and the script's own
        ``keys`` (to send in a pipeline)."""
        head = self._queue_heads.get(queue)
        if head is None:
            queue_keys = QueueKeys(self.prefix, queue)
            names = tuple(getattr(queue_keys, name) for name in QUEUE_KEYS)
            head = self._queue_heads[queue] = (names, f"{queue_keys.base}:")
        names, base = head
        return ("EVALSHA", self._shas[script], len(names) + len(keys), *names, *keys, base, *args)

    def run(self, script: str, queue: str, args: Sequence[Any] = (), keys: Sequence[str] = ()) -> Any:
        """Run ``script`` on ``queue`` and return its reply (one round trip)."""
        try:
            return self.direct.call(*self.command(script, queue, args, keys))
        except NoScriptError:
            self.load([script])
            return self.direct.call(*self.command(script, queue, args, keys))

    def pipeline(self, calls: Sequence[ScriptCall], raise_errors: bool = True) -> list[Any]:
        """Run several scripts in one round trip and return their replies, in order.

        Only the calls refused with NOSCRIPT run again: the others already ran, and running a
        claim twice would lease jobs nobody starts. With ``raise_errors`` False, a refused call's
        reply is its error instead of raising it.
        """
        results = self._send(calls)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            self.load({calls[i][0] for i in missing})
            for i, result in zip(missing, self._send([calls[i] for i in missing]), strict=True):
                results[i] = result
        if raise_errors:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def load(self, names: Iterable[str]) -> None:
        """Load scripts ``names`` into Redis (after NOSCRIPT: a restart or SCRIPT FLUSH emptied its cache)."""
        for name in names:
            self._shas[name] = self.client.script_load(script_source(name))

    def _send(self, calls: Sequence[ScriptCall]) -> list[Any]:
        return self.direct.pipeline([self.command(*call) for call in calls])
