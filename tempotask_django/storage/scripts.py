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
    "purge",
    "forget_consumers",
    "forget_queue",
    "stats",
    "cron_register",
    "cron_fire",
    "cron_control",
)

# One script call: (script name, queue, the script's own arguments).
ScriptCall = tuple[str, str, Sequence[Any]]


@functools.cache
def script_source(name: str) -> str:
    """The full text of script ``name``: lib.lua followed by ``name``.lua."""
    lua = resources.files("tempotask_django.storage") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class ScriptRunner:
    """Runs the queue scripts on one client, over ``direct``'s connections.

    Every queue script gets one key, the queue's waiting set (it names the queue's hash slot), and
    the queue's key base as its first argument: the scripts build the queue's other keys from it
    (see lua/lib.lua).
    """

    def __init__(self, client: Redis, direct: DirectCalls, prefix: str) -> None:
        self.client = client
        self.direct = direct
        self.prefix = prefix
        self._shas = {name: client.register_script(script_source(name)).sha for name in SCRIPT_NAMES}
        self._queue_heads: dict[str, tuple[str, str]] = {}

    def command(self, script: str, queue: str, args: Sequence[Any]) -> tuple[Any, ...]:
        """The EVALSHA command running ``script`` on ``queue`` with ``args`` (to send in a pipeline)."""
        head = self._queue_heads.get(queue)
        if head is None:
            keys = QueueKeys(self.prefix, queue)
            head = self._queue_heads[queue] = (keys.waiting, f"{keys.base}:")
        waiting, base = head
        return ("EVALSHA", self._shas[script], 1, waiting, base, *args)

    def run(self, script: str, queue: str, args: Sequence[Any] = ()) -> Any:
        """Run ``script`` on ``queue`` and return its reply (one round trip)."""
        try:
            return self.direct.call(*self.command(script, queue, args))
        except NoScriptError:
            self.load([script])
            return self.direct.call(*self.command(script, queue, args))

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
        return self.direct.pipeline([self.command(name, queue, args) for name, queue, args in calls])
