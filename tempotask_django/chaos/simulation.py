"""Cron beats on a simulated clock: a day of ticks in seconds, on the real fire script and a real Redis.

Each simulated beat is a real ``CronBeat`` stepping on the lab's Redis, so the real
cron_fire.lua decides every tick. Only time is simulated:

- **The server clock** is the simulation's: each step is given it as ``now_ms``, the seam that
  ``CronBeat.step()``/``tick()`` and the scripts (their ``now`` argument) offer tests. In
  production the beat reads the server's TIME, and the fire script reads it again itself.
- **Host clocks** are wrong: while a beat steps, ``time.time()`` and ``time.time_ns()`` return the
  simulated time plus that beat's skew (which jumps, as an NTP correction would), and its heartbeat
  clock runs fast or slow (drift). A decision taken on a host clock anywhere in a step would show as
  a doubled, missed or early tick.
- **Sleeps**: a beat wakes after the wait its step asked for, measured on its drifting clock, plus a
  scheduling delay (now and then a hiccup of seconds).
- **Disturbances**: a beat killed (its ``CronBeat`` is dropped; a fresh one starts later and registers
  again) or frozen (as with SIGSTOP: it resumes with the state it had).

Not modelled: a freeze between a beat reading the clock and its fire reaching Redis (in production
the script reads TIME when it runs; the ``beats`` scenario's real SIGSTOP covers that case).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tempotask_django.chaos.ticks import Tick, parse_tick_job
from tempotask_django.cron import CronBeat
from tempotask_django.storage.crons import CronStore, Fire, FireOutcome

MS = 1000
# A hiccup: the odds, at each wake-up, that a beat wakes seconds late (a busy host, a GC pause).
HICCUP_ODDS = 0.01
HICCUP_MS = (500, 5000)
# Mean scheduling delay of an ordinary wake-up, ms.
WAKE_DELAY_MS = 5.0


@contextlib.contextmanager
def host_wall_clock(seconds: float) -> Iterator[None]:
    """Inside the block, ``time.time()`` and ``time.time_ns()`` say ``seconds`` (a host's clock)."""
    real_time, real_time_ns = time.time, time.time_ns
    setattr(time, "time", lambda: seconds)  # noqa: B010 - setattr keeps mypy from refusing the patch
    setattr(time, "time_ns", lambda: int(seconds * 1e9))  # noqa: B010
    try:
        yield
    finally:
        setattr(time, "time", real_time)  # noqa: B010
        setattr(time, "time_ns", real_time_ns)  # noqa: B010


class RecordingCronStore(CronStore):
    """A CronStore that also counts the ticks the fire script answered "fired" to (the beat's view)."""

    def __init__(self, store: Any, fired: Counter[Tick]) -> None:
        super().__init__(store)
        self.fired = fired

    def fire(self, fires: Sequence[Fire], *, catchup_ms: int, now_ms: int = 0) -> list[FireOutcome | Exception]:
        replies = super().fire(fires, catchup_ms=catchup_ms, now_ms=now_ms)
        for request, reply in zip(fires, replies, strict=True):
            tick = parse_tick_job(request.spec.id)
            if isinstance(reply, FireOutcome) and reply.outcome == "fired" and tick is not None:
                self.fired[tick] += 1
        return replies


@dataclass
class SimulatedBeat:
    """One beat: its ``CronBeat`` (None while killed), its host clock, and what its fires were told."""

    number: int
    skew_s: float  # host wall clock minus server clock
    drift: float  # relative rate error of its monotonic clock (1e-3: 1 ms fast per second)
    build: Callable[[Callable[[], float]], CronBeat]  # a fresh beat, given its heartbeat clock
    now_ms: Callable[[], int]  # the simulated server clock
    fired: Counter[Tick] = field(default_factory=Counter)
    cron_beat: CronBeat | None = None
    generation: int = 0  # bumped when killed or frozen: wake-ups planned before are void
    restarts: int = 0
    steps: int = 0

    def start(self) -> None:
        self.cron_beat = self.build(self.monotonic)
        self.cron_beat.crons = RecordingCronStore(self.cron_beat.store, self.fired)

    def monotonic(self) -> float:
        """The host's monotonic clock, in seconds: the simulated time at the host's rate."""
        return self.now_ms() / MS * (1 + self.drift)

    def step(self, rng: random.Random) -> int:
        """Run one turn of the beat's loop now; returns when it wakes next (simulated ms)."""
        assert self.cron_beat is not None
        now = self.now_ms()
        with host_wall_clock(now / MS + self.skew_s):
            wait_ms = self.cron_beat.step(now)
        self.steps += 1
        delay = rng.uniform(*HICCUP_MS) if rng.random() < HICCUP_ODDS else rng.expovariate(1 / WAKE_DELAY_MS)
        return now + int(wait_ms / (1 + self.drift) + delay)


@dataclass(order=True)
class Event:
    at_ms: int
    seq: int
    kind: str = field(compare=False)  # wake, kill, restart, freeze, resume, skew, consume, edit
    beat: int = field(compare=False, default=-1)
    value: float = field(compare=False, default=0.0)  # duration (kill, freeze), ms; new skew (skew), s
    generation: int = field(compare=False, default=0)


class Simulation:
    """The event loop: beats waking, disturbances, and a consumer running the tick jobs."""

    def __init__(
        self,
        beats: Sequence[SimulatedBeat],
        consume: Callable[[], None],
        start_ms: int,
        edit: Callable[[], None] | None = None,
    ) -> None:
        self.beats = list(beats)
        self.consume = consume
        self.edit = edit  # an "edit" event calls it (a runtime schedule changed), at the simulated time
        self.clock_ms = start_ms
        self._events: list[Event] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self.clock_ms

    def at(self, at_ms: float, kind: str, beat: int = -1, value: float = 0.0) -> None:
        """Plan an event at ``at_ms`` (simulated ms); a wake-up counts only for the beat's current life."""
        generation = self.beats[beat].generation if beat >= 0 else 0
        heapq.heappush(self._events, Event(int(at_ms), next(self._seq), kind, beat, value, generation))

    def run_until(self, end_ms: int, rng: random.Random) -> None:
        while self._events and self._events[0].at_ms <= end_ms:
            event = heapq.heappop(self._events)
            self.clock_ms = max(self.clock_ms, event.at_ms)
            self._handle(event, rng)

    def _handle(self, event: Event, rng: random.Random) -> None:
        beat = self.beats[event.beat] if event.beat >= 0 else None
        if event.kind == "consume":
            self.consume()
        elif event.kind == "edit":
            if self.edit is not None:  # None: the changes are over
                self.edit()
        elif beat is None:
            raise ValueError(f"event {event.kind!r} names no beat")
        elif event.kind == "wake":
            if event.generation == beat.generation and beat.cron_beat is not None:
                self.at(beat.step(rng), "wake", beat.number)
        elif event.kind in ("kill", "freeze"):
            beat.generation += 1
            if event.kind == "kill":
                beat.cron_beat = None
            self.at(self.clock_ms + event.value, "restart" if event.kind == "kill" else "resume", beat.number)
        elif event.kind in ("restart", "resume"):
            if event.kind == "restart":
                beat.start()
                beat.restarts += 1
            self.at(self.clock_ms, "wake", beat.number)
        elif event.kind == "skew":
            beat.skew_s = event.value
        else:
            raise ValueError(f"unknown event {event.kind!r}")
