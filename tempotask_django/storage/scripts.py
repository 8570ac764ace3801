"""Lua scripts: one file per atomic state change, each between the shared lib.lua and once.lua.

Scripts are read from the package once and registered per client. ``ScriptRunner`` is the one
way to run them: ``run`` for one call, ``pipeline`` for several in one round trip. Both send
EVALSHA and load a script again when Redis answers NOSCRIPT (after a restart, for instance).

A reply can be lost after Redis ran the call (a connection cut, a proxy restart, a failover), and
the connections resend the call (storage/direct.py). So every call is made safe to run twice:
a script not in RESENT_WITHOUT_REQUEST_ID gets a request id, a key of its own
(``QueueKeys.reply``) where lua/once.lua keeps its reply for a resend, which gets that reply
instead of a second run (storage/replies.py keeps the books: which key a call gets, which go).

The plain commands sent through the regular client are not resent (its pool's connections retry
nothing): a lost reply raises to the caller, who may repeat them, since they may all run twice with
one effect: the queue registry's SADD/SREM and listed mark, the pause flag, heartbeats (the same
HSET, PEXPIRE and ZADD), cron index writes, reads. The one exception, the doorbell a resume rings
(XADD), at worst rings twice: one spurious wake-up.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from importlib import resources
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError, ResponseError

from tempotask_django.storage.cluster import ClusterCalls
from tempotask_django.storage.direct import DirectCalls
from tempotask_django.storage.keys import QueueKeys
from tempotask_django.storage.lua_prelude import prelude_for
from tempotask_django.storage.replies import REPEAT_WINDOW, RequestIds

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
    "trim",
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
    "listed",
    "minutes",
)

# The scripts that may run twice for one call with the same effect and a reply as good, so they
# are resent without a request id (storing their replies would cost memory on hot paths for
# nothing). Every other script, including any new one, gets a request id (lua/once.lua):
#   renew             re-renewing a lease changes nothing; an entry found lost is acked the first
#                     time and reported lost again the second
#   sweep             a job sent back to waiting is no longer processing: the second run skips it
#                     (its counts are for logs only), and a history trim stops at the limit
#   forget_consumers  deletes idle consumers with nothing pending: a second run finds none
#   stats             reads only
#   trim              deletes the oldest history jobs only while a set is over its size
# Not safe without one, for instance: claim (the first run's batch would stay leased to a worker
# that never got it), enqueue (a job a worker just claimed would be reset to waiting), complete
# and fail (the second run refuses what the first recorded), reclaim, log (a line twice), delete,
# retry, purge and the cron scripts (their replies say what the first run did).
RESENT_WITHOUT_REQUEST_ID = frozenset({"renew", "sweep", "forget_consumers", "stats", "trim"})

# The kinds of key a script may ask for (lua/lib.lua needs_reply), each a QueueKeys method of an id.
NEEDED_KINDS = frozenset({"job", "logs", "errors", "children", "rate", "running", "parked"})
# How many times one call is sent again with the keys it asked for: a trim asks twice (the jobs'
# keys, then their parents' sets), more only when other clients change the queue in between.
NEED_ROUNDS = 4
NEED_PREFIX = "NEEDKEYS "

# One script call: (script name, queue, the script's own arguments[, its own keys: own_key(1)... in Lua]).
ScriptCall = tuple[str, str, Sequence[Any]] | tuple[str, str, Sequence[Any], Sequence[str]]


@functools.cache
def script_source(name: str) -> str:
    """The full text of script ``name``: what it uses of lib.lua and limits.lua (the prelude, see
    lua_prelude.py), then ``name``.lua as the function script_body, then once.lua, which runs it (at
    most once per request id)."""
    lua = resources.files("tempotask_django.storage") / "lua"
    prelude = "\n".join((lua / part).read_text() for part in ("lib.lua", "limits.lua"))
    body = (lua / f"{name}.lua").read_text()
    once = (lua / "once.lua").read_text()
    return f"{prelude_for(prelude, body + once)}\nlocal function script_body()\n{body}\nend\n{once}"


def reply_key(command: Sequence[Any]) -> str | None:
    """The key where an EVALSHA built by ``ScriptRunner.command`` stores its reply, None without one."""
    if not command or command[0] != "EVALSHA":
        return None
    count = int(command[2])
    if count < 1:
        return None
    last, base = command[2 + count], command[3 + count]
    return last if str(last).startswith(f"{base}reply:") else None


def needed_keys(reply: Any) -> list[tuple[str, str]] | None:
    """The keys (kind, id) a call asked for with its reply (lua/lib.lua needs_reply), else None."""
    if not isinstance(reply, ResponseError) or not str(reply).startswith(NEED_PREFIX):
        return None
    return [(str(kind), str(id_)) for kind, id_ in json.loads(str(reply)[len(NEED_PREFIX) :])]


class ScriptRunner:
    """Runs the queue scripts on one client, over ``direct``'s connections.

    Every queue script gets the queue's keys (QUEUE_KEYS) as KEYS[1..n], then the keys of its own
    (a job's record, its logs...), and the queue's key base as its first argument (to read the
    declared keys back, never to build one). A script that finds out while it runs that it needs
    more keys (the jobs a trim deletes, a deleted job's parent) asks for them before it writes
    anything: ``pipeline`` sends it again with them declared (see lua/lib.lua). All of them share
    the queue's hash slot.
    """

    def __init__(
        self,
        client: Redis,
        direct: DirectCalls | ClusterCalls,
        prefix: str,
        *,
        request_ids: bool = True,
        lease_window: float = REPEAT_WINDOW,
    ) -> None:
        """``request_ids`` False (the in-process Redis of immediate mode, which loses no reply)
        sends no request id. ``lease_window``: seconds a claim that raised may still be answered
        by its first run's batch when repeated (see replies.py), shorter than a lease."""
        self.client = client
        self.direct = direct
        self.prefix = prefix
        self.requests = RequestIds(lease_window) if request_ids else None
        self._shas = {name: client.register_script(script_source(name)).sha for name in SCRIPT_NAMES}
        self._queue_heads: dict[str, tuple[tuple[str, ...], str]] = {}

    def command(self, script: str, queue: str, args: Sequence[Any], keys: Sequence[str] = ()) -> tuple[Any, ...]:
        """The EVALSHA command running ``script`` on ``queue`` with ``args`` and the script's own
        ``keys`` (to send in a pipeline), with a request id unless the script needs none. Send it
        with ``send``."""
        head = self._queue_heads.get(queue)
        if head is None:
            queue_keys = QueueKeys(self.prefix, queue)
            names = tuple(getattr(queue_keys, name) for name in QUEUE_KEYS)
            head = self._queue_heads[queue] = (names, f"{queue_keys.base}:")
        names, base = head
        if self.requests is not None and script not in RESENT_WITHOUT_REQUEST_ID:
            keys = (*keys, self.requests.key_for(script, queue, base, args, keys))
        return ("EVALSHA", self._shas[script], len(names) + len(keys), *names, *keys, base, *args)

    def send(self, commands: Sequence[Sequence[Any]], unsettled: list[str] | None = None) -> list[Any]:
        """Send ``commands`` (built by ``command``, or plain commands that are safe to run twice)
        in one round trip, resent after a lost reply; returns each reply or the ResponseError a
        refused one got. The stored replies of calls answered before are deleted with them.

        With ``unsettled``, the calls' reply keys are added to it instead of being settled here:
        the caller settles them together (``_settled``) once it has every reply it needs."""
        if self.requests is None:
            return self.direct.pipeline(commands, resend=True)
        head = self.requests.forget_commands()
        keys = [key for key in map(reply_key, commands) if key is not None]
        if unsettled is not None:
            unsettled += keys
        with self._settled(keys) if unsettled is None else nullcontext():
            return self.direct.pipeline([*head, *commands], resend=True)[len(head) :]

    @contextmanager
    def _settled(self, keys: list[str]) -> Iterator[None]:
        """Settle the reply keys in ``keys`` (filled meanwhile, maybe) when the block ends: answered,
        or unanswered when it raised. A round trip answered before a later one of the same call
        raised is unanswered too: its caller never saw its reply (a claim's batch would be leased
        to nobody), so the call repeated gets its stored reply."""
        if self.requests is None:
            yield
            return
        try:
            yield
        except BaseException:
            self.requests.unanswered(keys)
            raise
        self.requests.answered(keys)

    def forget_replies(self) -> None:
        """Delete now the stored replies of the calls answered so far (before a process stops:
        else they would stay until they expire)."""
        if self.requests is not None:
            while commands := self.requests.forget_commands(now=True):
                self.direct.pipeline(commands, resend=True)

    def run(self, script: str, queue: str, args: Sequence[Any] = (), keys: Sequence[str] = ()) -> Any:
        """Run ``script`` on ``queue`` and return its reply (one round trip)."""
        (reply,) = self.pipeline([(script, queue, args, keys)])
        return reply

    def pipeline(self, calls: Sequence[ScriptCall], raise_errors: bool = True) -> list[Any]:
        """Run several scripts in one round trip and return their replies, in order.

        Only the calls refused with NOSCRIPT run again: the others already ran, and running a
        claim twice would lease jobs nobody starts. With ``raise_errors`` False, a refused call's
        reply is its error instead of raising it.
        """
        calls = list(calls)
        keys: list[str] = []
        with self._settled(keys):
            results = self._send(calls, keys)
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:
                self.load({calls[i][0] for i in missing})
                for i, result in zip(missing, self._send([calls[i] for i in missing], keys), strict=True):
                    results[i] = result
            for _ in range(NEED_ROUNDS):
                asking = {i: wanted for i, result in enumerate(results) if (wanted := needed_keys(result)) is not None}
                if not asking:
                    break
                for i, wanted in asking.items():
                    calls[i] = self._declaring(calls[i], wanted)
                for i, result in zip(asking, self._send([calls[i] for i in asking], keys), strict=True):
                    results[i] = result
        if raise_errors:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def pipeline_replicated(
        self, calls: Sequence[ScriptCall], replicas: int, timeout_ms: int
    ) -> tuple[list[Any], list[int]]:
        """``pipeline`` with a ``WAIT replicas timeout_ms`` after each call, on the call's connection:
        each call's reply (raising the first error), and how many replicas acknowledged each call's
        writes (WAIT counts the replicas holding every write made so far on its connection)."""
        calls = list(calls)
        results: list[Any] = [None] * len(calls)
        acknowledged = [0] * len(calls)
        todo = list(range(len(calls)))
        loaded = False
        keys: list[str] = []
        # Sent again: the calls refused with NOSCRIPT (once, after loading) and those asking for keys
        # (declared, as in ``pipeline``); neither wrote anything.
        with self._settled(keys):
            for _ in range(NEED_ROUNDS + 2):
                commands: list[Sequence[Any]] = []
                for i in todo:
                    commands += [self.command(*calls[i]), ("WAIT", replicas, timeout_ms)]
                replies = self.send(commands, keys)
                for n, i in enumerate(todo):
                    results[i], acknowledged[i] = replies[2 * n], replies[2 * n + 1]
                missing = [] if loaded else [i for i in todo if isinstance(results[i], NoScriptError)]
                if missing:
                    self.load({calls[i][0] for i in missing})
                    loaded = True
                asking = {i: wanted for i in todo if (wanted := needed_keys(results[i])) is not None}
                for i, wanted in asking.items():
                    calls[i] = self._declaring(calls[i], wanted)
                todo = sorted({*missing, *asking})
                if not todo:
                    break
        for result in [*results, *acknowledged]:
            if isinstance(result, Exception):
                raise result
        return results, [int(count) for count in acknowledged]

    def _declaring(self, call: ScriptCall, wanted: Sequence[tuple[str, str]]) -> ScriptCall:
        """``call`` with the keys it asked for declared too (they were not written: it sends them
        again as a new call, with a new request id)."""
        script, queue, args = call[0], call[1], call[2]
        keys = list(call[3]) if len(call) > 3 else []
        queue_keys = QueueKeys(self.prefix, queue)
        for kind, id_ in wanted:
            if kind not in NEEDED_KINDS:
                raise ResponseError(f"script {script} asked for a key of unknown kind {kind!r}")
            key = getattr(queue_keys, kind)(id_)
            if key not in keys:
                keys.append(key)
        return script, queue, args, keys

    def load(self, names: Iterable[str]) -> None:
        """Load scripts ``names`` into Redis (after NOSCRIPT: a restart or SCRIPT FLUSH emptied its cache)."""
        for name in names:
            self._shas[name] = self.client.script_load(script_source(name))

    def _send(self, calls: Sequence[ScriptCall], unsettled: list[str] | None = None) -> list[Any]:
        return self.send([self.command(*call) for call in calls], unsettled)
