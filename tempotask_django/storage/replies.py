"""Request ids: a script call sent again after its reply was lost gets the first run's reply.

A call carries a request id as its last key, ``QueueKeys.reply(id)``: lua/once.lua stores the
script's reply there, and a call arriving with a key that holds a reply gets that reply without
running again. ``RequestIds`` hands out those keys and keeps the books around them:

- the direct connections resend a call with its key (storage/direct.py), so a reply lost on the
  way is answered by the resend;
- when every resend failed too, the call raised and its caller may repeat it: the same call (same
  script, queue, arguments and keys) repeated soon after gets the same key, so it is answered by
  the first run if that one ran (for a claim: the same worker, queue and options, see
  IDENTIFYING_ARGUMENTS). "Soon" is REPEAT_WINDOW from the call's first send, and for the
  scripts that hand out leases (LEASING_SCRIPTS) ``lease_window``: a batch of jobs claimed for a
  worker may be handed to it only while the leases surely still hold, not after another worker
  may have taken them over. A claim repeated for more jobs (COUNT_ARGUMENT) is still the same call:
  the batch fits in the room it asks for;
- once a call is answered its stored reply is useless: its key is deleted with a later round trip
  (``forget_commands``), and expires anyway (once.lua).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any

# Scripts whose reply hands out leases on jobs.
LEASING_SCRIPTS = frozenset({"claim", "reclaim"})
# Scripts with an argument that is the most jobs to hand out, by position in their arguments: a
# repeat may ask for more than the call that raised (a worker whose jobs finished meanwhile has
# more room) and still get that call's batch, which fits; never for fewer.
COUNT_ARGUMENT = {"claim": 2}
# Scripts whose leading arguments alone say what a call hands out, by how many lead: the rest, and
# the keys declared, change from call to call of the same worker (the keys and carried-over entries
# its last answered claim named, maybe another thread's) and do not make a repeat another call.
IDENTIFYING_ARGUMENTS = {"claim": 5}
# Seconds a call that raised may still be answered by its stored reply when repeated: well within
# the 300 s a stored reply lives (REPLY_TTL_MS in lua/once.lua).
REPEAT_WINDOW = 240.0
# Calls that raised remembered at most (the oldest are forgotten first).
MAX_UNANSWERED = 1000
# Stored replies deleted together, with the round trip after FORGET_AFTER piled up or the oldest
# waited FORGET_AGE seconds (one UNLINK per queue for many calls: a command per call costs more
# than the memory of a few replies kept a little longer; an idle worker's leftovers go within
# seconds), and at most FORGET_BATCH in one round trip (the rest go with the next ones).
FORGET_AFTER = 64
FORGET_AGE = 1.0
FORGET_BATCH = 500

Call = tuple[str, str, tuple[Any, ...], tuple[str, ...]]  # script, queue, arguments, own keys


class RequestIds:
    """The reply keys of one script runner's calls (thread-safe)."""

    def __init__(self, lease_window: float = REPEAT_WINDOW) -> None:
        self.lease_window = lease_window
        self._lock = threading.Lock()
        # Reply key -> (its call, when the key was first sent, its count): calls not answered yet.
        self._in_flight: dict[str, tuple[Call, float, int]] = {}
        # Call -> (reply key, when it was first sent, its count): calls that raised, the oldest first.
        self._unanswered: OrderedDict[Call, tuple[str, float, int]] = OrderedDict()
        self._answered: deque[str] = deque()  # keys whose stored reply can go
        self._answered_since = 0.0  # when the oldest of them was answered (about)

    def key_for(self, script: str, queue: str, base: str, args: Sequence[Any], keys: Sequence[str]) -> str:
        """The reply key for this call: that of the same call when it raised moments ago, else a new one.

        A key is handed to one repeat at a time (two threads repeating the same claim must not
        both get its batch); it comes back if that repeat raises too.
        """
        call, count = _call(script, queue, args, keys)
        window = self.lease_window if script in LEASING_SCRIPTS else REPEAT_WINDOW
        now = time.monotonic()
        with self._lock:
            earlier = self._unanswered.get(call) if self._unanswered else None
            if earlier is not None and now - earlier[1] < window and count >= earlier[2]:
                del self._unanswered[call]
                key, sent, count = earlier
            else:
                key, sent = f"{base}reply:{secrets.token_hex(8)}", now
            self._in_flight[key] = (call, sent, count)
        return key

    def answered(self, keys: Iterable[str]) -> None:
        """These calls got their replies: their stored replies can go."""
        keys = list(keys)
        with self._lock:
            for key in keys:
                self._in_flight.pop(key, None)
            if not self._answered:
                self._answered_since = time.monotonic()
        self._answered.extend(keys)

    def unanswered(self, keys: Iterable[str]) -> None:
        """These calls raised without a reply (they may have run): the same call repeated soon gets the same key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                flight = self._in_flight.pop(key, None)
                if flight is not None:
                    call, sent, count = flight
                    self._unanswered[call] = (key, sent, count)
                    self._unanswered.move_to_end(call)
            while self._unanswered and (
                len(self._unanswered) > MAX_UNANSWERED or now - next(iter(self._unanswered.values()))[1] > REPEAT_WINDOW
            ):
                self._unanswered.popitem(last=False)

    def forget_commands(self, *, now: bool = False) -> list[tuple[str, ...]]:
        """UNLINK commands for stored replies no call needs any more, one per queue (one hash slot
        each); none until FORGET_AFTER of them piled up or the oldest waited FORGET_AGE, unless
        ``now`` (a process about to stop)."""
        if (
            not now
            and len(self._answered) < FORGET_AFTER
            and (not self._answered or time.monotonic() - self._answered_since < FORGET_AGE)
        ):
            return []
        by_slot: dict[str, list[str]] = {}
        for _ in range(FORGET_BATCH):
            try:
                key = self._answered.popleft()
            except IndexError:
                break
            by_slot.setdefault(key.partition("}")[0], []).append(key)
        return [("UNLINK", *keys) for keys in by_slot.values()]


def _call(script: str, queue: str, args: Sequence[Any], keys: Sequence[str]) -> tuple[Call, int]:
    """What makes two calls the same (their count argument aside), and that count (0 when none)."""
    lead = IDENTIFYING_ARGUMENTS.get(script)
    if lead is not None:
        args, keys = args[:lead], ()
    at = COUNT_ARGUMENT.get(script)
    if at is None or len(args) <= at:
        return (script, queue, tuple(args), tuple(keys)), 0
    return (script, queue, (*args[:at], *args[at + 1 :]), tuple(keys)), int(args[at])
