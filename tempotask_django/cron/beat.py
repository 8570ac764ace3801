"""The cron beat: turns schedules into jobs, each tick exactly once however many beats run.

``CronBeat.tick(now)`` is one step: find the schedules whose tick has come and ask Redis to fire
them (cron_fire.lua decides, atomically, whether this tick still has to fire). ``run()`` registers
the schedules, then repeats ``tick()`` and sleeps until the next tick is due, or until its next
heartbeat (every CRON_BEAT_HEARTBEAT seconds: one pipelined write that lets the admin tell whether a
beat is alive). "Now" is always the Redis server's clock, so beats on hosts with skewed clocks agree
on which tick is due; the host clock only measures how long to sleep.

A tick stays the beat's to offer until Redis has answered for it (fired, already decided, missed,
paused): a connection error, READONLY or OOM leaves it owed, and so are the ticks that come while
Redis keeps failing; the next step offers them again, oldest first (the fire script's last-tick
check makes a retry after a lost reply answer "done"). A schedule whose job cannot be built is
logged and skipped on its own: it never stops another.

Runtime schedules (runtime.py) are loaded at the start and again whenever the version counter in
Redis moves (checked at each heartbeat) or the fire script answers "stale": the beat then fires
what a changed schedule's old version still owes, and the new version's ticks from its start.
A tick held by overlap "queue" is offered again every HELD_POLL_MS until its previous run ends.

After a Sentinel failover the old master may have answered ticks that never reached the new one
(replication is asynchronous, and the old master accepts writes until its clients leave it). Each
step asks whether the sentinels named a new master; when they did, the ticks answered since shortly
before the last look are offered again, oldest first, before any later one: the new master fires
those it lacks (its last-tick check would refuse them once a later tick fired there).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from tempotask_django.conf import Settings, get_settings
from tempotask_django.cron.loaded import RuntimeSchedules, log_reply
from tempotask_django.cron.schedules import CronSchedule, collect_schedules
from tempotask_django.producer import announce, build_spec
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.crons import CronStore, Fire, FireOutcome
from tempotask_django.storage.outage import ERROR_LOG_INTERVAL, REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.store import RedisStore

logger = logging.getLogger("tempotask")

# Longest sleep between two looks at the server clock, ms: bounds how far the host's clock may drift
# from the server's during a long wait (a daily schedule), at the cost of one TIME call per period.
MAX_SLEEP_MS = 30_000
# Longest wait between two tries while Redis fails, s: a tick owed through an outage goes out within
# about this long of Redis answering again (one TIME call per try meanwhile).
RETRY_CAP = 1.0
# Most owed ticks of one schedule offered in one step (a long outage of an every-second schedule is
# replayed in slices, with no sleep between them).
REPLAY_BATCH = 100
# How often a tick held by overlap "queue" is offered again while its previous run goes on, ms.
HELD_POLL_MS = 250
# A step (or a read of the server clock) that took longer than this, s, waited on Redis: the client
# retried a call to a node that is down (Redis Cluster retries until a replica is promoted) without
# raising. The ticks that came meanwhile are owed, as after an error: a slow Redis is not downtime.
SLOW_CALL_S = 0.5
# After a change of master, the ticks answered since this long before the last look at the
# sentinels (that still named the old master) are offered again, s: covers a write the old master
# answered after its replica was promoted but before the sentinels named it, and the replication
# lag before a crash.
REOFFER_MARGIN_S = 5.0


@dataclass
class TickResult:
    """What one ``tick()`` did."""

    now_ms: int  # the server time the tick used
    next_due_ms: int | None  # the earliest upcoming tick of any schedule (None: nothing will fire)
    outcomes: dict[str, FireOutcome] = field(default_factory=dict)  # schedule name -> what happened

    @property
    def fired(self) -> list[str]:
        return [name for name, outcome in self.outcomes.items() if outcome.outcome == "fired"]

    def sleep_ms(self) -> int:
        """How long to wait before the next tick."""
        if self.next_due_ms is None:
            return MAX_SLEEP_MS
        return max(0, min(MAX_SLEEP_MS, self.next_due_ms - self.now_ms))


class CronBeat:
    """A beat for ``schedules`` (default: every schedule the code defines).

    Example (what ``manage.py runcron`` does)::

        CronBeat().run()   # until request_stop() (SIGTERM/SIGINT in the command)
    """

    def __init__(
        self,
        schedules: Sequence[CronSchedule] | None = None,
        *,
        store: RedisStore | None = None,
        settings: Settings | None = None,
        tasks: TaskRegistry = registry,
        kind: str = "beat",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or get_settings()
        self.tasks = tasks
        self.code_schedules = list(collect_schedules(tasks) if schedules is None else schedules)
        self.schedules = list(self.code_schedules)  # the code's, then the runtime ones in force
        self.store = store or get_default_store()
        self.crons = CronStore(self.store)
        self.runtime = RuntimeSchedules(self.crons, {schedule.name for schedule in self.code_schedules})
        self._reload_wanted = False  # a reply said a runtime schedule changed: reload before the next step
        self._last_job: dict[str, str] = {}  # name -> its last job id, as the last reply said (overlap)
        self._held: dict[str, int] = {}  # name -> its tick held by overlap "queue", ms
        self._retiring = False  # firing what old versions still owe: their 'stale' is expected
        self.catchup_ms = int(self.settings.cron_catchup_window * 1000)
        # name -> the oldest tick (epoch s) this beat still has to offer: the next one, or one Redis
        # has not answered for yet.
        self._upcoming: dict[str, int | None] = {}
        # Schedules owed ticks since a step failed: every tick from _upcoming on is offered (a Redis
        # outage is not downtime: the catch-up rule's "latest tick only" does not apply).
        self._replaying: set[str] = set()
        self._refused_logged: dict[str, float] = {}  # name -> when (self._clock) its refusal was logged
        self._synced = False
        # Master changes (Sentinel): the count last seen, when the sentinels last named the same
        # master (self._clock), and name -> (when, tick s) of the ticks answered since shortly before.
        self._master_changes = self.store.master_changes()
        self._master_confirmed_at = clock()
        self._answered: dict[str, deque[tuple[float, int]]] = {}
        self._stopping = threading.Event()
        self._throttle = ErrorThrottle(cap=RETRY_CAP)
        self.kind = kind  # how it runs, for the admin: "runcron" or "runworkers --with-cron"
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._clock = clock  # measures the heartbeat interval (tests pass a fake one)
        self._started_ms = 0
        self._heartbeat_due = 0.0  # on self._clock; 0: at the first chance

    # -- registration ---------------------------------------------------------------------------
    def sync(self, now_ms: int | None = None) -> None:
        """Register every code schedule in Redis, forget the ones the code no longer defines (never
        a runtime schedule), and load the runtime schedules."""
        now_ms = self.store.server_time_ms() if now_ms is None else now_ms
        known = self.crons.registered()
        runtime = self.crons.runtime_names()
        taken = sorted(schedule.name for schedule in self.code_schedules if schedule.name in runtime)
        for name in taken:
            logger.error("cron %s: a runtime schedule has this name; the code's schedule is not registered", name)
        code = [schedule for schedule in self.code_schedules if schedule.name not in runtime]
        wanted = {schedule.name for schedule in code}
        for name, queue in sorted(known.items()):
            # The hash's own source is checked too: a runtime schedule whose entry in the set of
            # runtime names was not written (an error between two writes) is never removed.
            if name not in wanted and name not in runtime and (self.crons.get(name) or {}).get("source") != "runtime":
                self.crons.unregister(name, queue)
                logger.info("cron %s: no longer defined; removed from Redis", name)
        for schedule in code:
            self._register(schedule, known.get(schedule.name), now_ms)
        self.runtime.code_names = wanted
        self.runtime.schedules = {}
        self._use(code, now_ms, first=True)
        self._synced = True

    def reload(self, now_ms: int | None = None) -> None:
        """Load the runtime schedules again: a changed or deleted one first fires what its old
        version still owes (the fire script takes only its ticks up to the change), then the new
        version goes on from its start (every tick since, not only the latest)."""
        now_ms = self.store.server_time_ms() if now_ms is None else now_ms
        self._use([s for s in self.schedules if s.source != "runtime"], now_ms)

    def _use(self, code: list[CronSchedule], now_ms: int, *, first: bool = False) -> None:
        """Fire what the replaced versions owe, then take the runtime schedules just loaded. On a
        beat's first load they start as code schedules do (their latest tick only)."""
        loaded = self.runtime.reload()
        if loaded.retired:
            self._retiring = True
            try:
                self._replaying.update(schedule.name for schedule in loaded.retired)
                self._tick(now_ms, loaded.retired)
            except Exception as exc:  # the old version's last ticks are lost; the change stands
                logger.warning("cron: could not fire the last ticks of changed schedules: %s", exc)
            finally:
                self._retiring = False
            for schedule in loaded.retired:
                self._upcoming.pop(schedule.name, None)
                self._replaying.discard(schedule.name)
                self._held.pop(schedule.name, None)
        for name, started_ms in ({} if first else loaded.started_ms).items():
            schedule = loaded.schedules[name]
            self._upcoming[name] = schedule.cron.next_after(max(started_ms, now_ms - self.catchup_ms) // 1000)
            self._replaying.add(name)
        self.schedules = code + sorted(loaded.schedules.values(), key=lambda schedule: schedule.name)
        self._reload_wanted = False

    def _register(self, schedule: CronSchedule, old_queue: str | None, now_ms: int) -> None:
        carried = 0
        if old_queue is not None and old_queue != schedule.queue:
            # Moved to another queue: keep its last tick so the move does not fire a tick again.
            carried = self.crons.last_tick_ms(schedule.name, old_queue)
        upcoming = schedule.cron.next_after(now_ms // 1000)
        next_ms = upcoming * 1000 if upcoming is not None else 0
        fresh = self.crons.register(
            schedule.name, schedule.queue, schedule.definition(), next_ms, carried, now_ms=now_ms
        )
        if old_queue is not None and old_queue != schedule.queue:
            self.crons.delete_state(schedule.name, old_queue)
        logger.info(
            "cron %s: %s %r (%s) -> task %s on queue %s",
            schedule.name,
            "registered" if fresh else "loaded",
            schedule.expression,
            schedule.timezone,
            schedule.task,
            schedule.queue,
        )

    # -- one step -------------------------------------------------------------------------------
    def tick(self, now_ms: int | None = None) -> TickResult:
        """Fire every schedule whose tick has come (by the server clock, or ``now_ms`` in tests).

        A schedule more than one tick behind (after downtime) offers only its most recent tick;
        the script fires it if it is within CRON_CATCHUP_WINDOW and no beat fired it yet. A tick
        Redis did not answer for stays owed: when this raises (a Redis error), the next call offers
        it again, with every tick that came meanwhile.
        """
        try:
            self._follow_master(ask=True)
            return self._tick(now_ms, self.schedules)
        except Exception:
            self._replaying.update(schedule.name for schedule in self.schedules)
            raise

    def _tick(self, now_ms: int | None, schedules: list[CronSchedule]) -> TickResult:
        fake_now = now_ms is not None
        if now_ms is None:
            asked = self._clock()
            now_ms = self.store.server_time_ms()
            if self._clock() - asked > SLOW_CALL_S:
                self._replaying.update(schedule.name for schedule in schedules)
            self._follow_master(ask=False)  # that call may have reached a new master
        fires = self._offers(schedules, now_ms)
        replies = self._fire(fires, now_ms if fake_now else 0)
        result = TickResult(now_ms, None)
        owed: dict[str, int | None] = {}  # name -> its oldest tick Redis has not answered for
        error: Exception | None = None
        for fire, reply in zip(fires, replies, strict=True):
            tick = fire.tick_ms // 1000
            if isinstance(reply, Exception):
                error = error or reply
                if owed.get(fire.name) is None and not fire.release:  # an older unanswered tick stays owed
                    owed[fire.name] = tick
                continue
            self._note(fire, reply)
            self._report(fire, reply)
            if not fire.release:
                owed[fire.name] = None  # answered: this tick, and any earlier one, is decided
                self._answered.setdefault(fire.name, deque()).append((self._clock(), tick))
                result.outcomes[fire.name] = reply
                self._upcoming[fire.name] = fire.next_run_ms // 1000 or None
        for name, owed_tick in owed.items():
            if owed_tick is not None:
                self._upcoming[name] = owed_tick
        now = now_ms // 1000
        for name in list(self._replaying):
            upcoming = self._upcoming.get(name)
            if owed.get(name) is None and (upcoming is None or upcoming > now):
                self._replaying.discard(name)  # caught up
        result.next_due_ms = self._next_wake_ms(now_ms)
        if error is not None:
            raise error
        return result

    def _follow_master(self, *, ask: bool) -> None:
        """When the sentinels named a new master since the last look (``ask``: look now), offer
        again the ticks answered since REOFFER_MARGIN_S before the last look that saw the old one."""
        changes = self.store.master_changes(ask=ask)
        now = self._clock()
        if changes != self._master_changes:
            self._master_changes = changes
            since = self._master_confirmed_at - REOFFER_MARGIN_S
            current = {schedule.name for schedule in self.schedules}
            for name, answers in self._answered.items():
                ticks = [tick for at, tick in answers if at >= since]
                if ticks and name in current:
                    upcoming = self._upcoming.get(name)
                    self._upcoming[name] = min(ticks) if upcoming is None else min(upcoming, min(ticks))
                    self._replaying.add(name)
                    logger.info("cron %s: a new master: its ticks from %d on are offered again", name, min(ticks))
            self._answered.clear()
        elif not ask:
            return
        self._master_confirmed_at = now
        for name, answers in list(self._answered.items()):
            while answers and answers[0][0] < now - REOFFER_MARGIN_S:
                answers.popleft()
            if not answers:  # a schedule that stopped firing (or was deleted) leaves no entry
                del self._answered[name]

    def _offers(self, schedules: list[CronSchedule], now_ms: int) -> list[Fire]:
        """The fire requests of the due ticks of ``schedules``, and of their held ticks."""
        fires: list[Fire] = []
        for schedule in schedules:
            ticks = self._due(schedule, now_ms)
            held = None if self._retiring else self._held.get(schedule.name)
            try:
                if held is not None:
                    fires.append(self._fire_of(schedule, held // 1000, release=True))
                fires += [self._fire_of(schedule, due) for due in ticks]
            except Exception as exc:  # its job cannot be built: skip this schedule's ticks, and only its
                self._refuse(schedule, (ticks or [(held or 0) // 1000])[-1], exc)
                self._held.pop(schedule.name, None)
                if ticks:
                    self._upcoming[schedule.name] = schedule.cron.next_after(ticks[-1])
        return fires

    def _next_wake_ms(self, now_ms: int) -> int | None:
        """When to step next: the next tick, sooner while a tick is held (to release it when its
        previous run ends) and at once when a reply said a runtime schedule changed."""
        if self._reload_wanted:
            return now_ms
        due = self._next_due_ms()
        if self._held:
            return now_ms + HELD_POLL_MS if due is None else min(due, now_ms + HELD_POLL_MS)
        return due

    def _fire(self, fires: list[Fire], now_ms: int) -> list[FireOutcome | Exception]:
        """Offer ``fires``; those the script asks to recheck (overlap: the last job is not the one
        this beat knew) go again at once, with the last job it named."""
        replies = self.crons.fire(fires, catchup_ms=self.catchup_ms, now_ms=now_ms)
        again = [i for i, reply in enumerate(replies) if isinstance(reply, FireOutcome) and reply.outcome == "recheck"]
        if again:
            retried = [dataclasses.replace(fires[i], previous_job_id=replies[i].last_job_id) for i in again]  # type: ignore[union-attr]
            for i, reply in zip(
                again, self.crons.fire(retried, catchup_ms=self.catchup_ms, now_ms=now_ms), strict=True
            ):
                replies[i] = reply
        return replies

    def _note(self, fire: Fire, reply: FireOutcome) -> None:
        """Remember what a reply says of the schedule: its last job, its held tick, a change."""
        if reply.last_job_id:
            self._last_job[fire.name] = reply.last_job_id
        if reply.held_tick_ms and not self._retiring:
            self._held[fire.name] = reply.held_tick_ms
        else:
            self._held.pop(fire.name, None)
        if reply.outcome == "stale" and not self._retiring:
            self._reload_wanted = True

    def _fire_of(self, schedule: CronSchedule, due: int, *, release: bool = False) -> Fire:
        """The fire request of ``schedule``'s tick ``due`` (epoch s); raises when its job is invalid."""
        following = schedule.cron.next_after(due)
        spec = build_spec(
            self.tasks.get(schedule.task),
            schedule.data,
            settings=self.settings,
            job_id=schedule.job_id(due),
            queue=schedule.queue,
            attempts=schedule.attempts,
            priority=schedule.priority,
            origin=f"cron:{schedule.name}",
        )
        return Fire(
            schedule.name,
            spec,
            due * 1000,
            (following or 0) * 1000,
            version=schedule.version,
            previous_job_id=self._last_job.get(schedule.name, ""),
            release=release,
        )

    def _due(self, schedule: CronSchedule, now_ms: int) -> list[int]:
        """The ticks to offer now (epoch s, oldest first); empty when the next one has not come yet."""
        now = now_ms // 1000
        cron = schedule.cron
        if schedule.name not in self._upcoming:  # first look: the most recent tick may be a missed one
            self._upcoming[schedule.name] = cron.last_at_or_before(now) or cron.next_after(now)
        due = self._upcoming[schedule.name]
        if due is None or due > now:
            return []
        if schedule.name in self._replaying:
            # Owed ticks older than the catch-up window are missed whatever happens: offer the
            # latest of them only (the script records it as missed), then every tick after it.
            too_old = cron.last_at_or_before((now_ms - self.catchup_ms) // 1000 - 1)
            if too_old is not None and too_old > due:
                due = too_old
            ticks: list[int] = []
            while due is not None and due <= now and len(ticks) < REPLAY_BATCH:
                ticks.append(due)
                due = cron.next_after(due)
            return ticks
        following = cron.next_after(due)
        if following is not None and following <= now:  # behind by several ticks: only the latest counts
            due = cron.last_at_or_before(now)
        return [due] if due is not None else []

    def _refuse(self, schedule: CronSchedule, tick: int, exc: Exception) -> None:
        """Log that ``schedule``'s job cannot be built: at most once per ERROR_LOG_INTERVAL per schedule."""
        now = self._clock()
        last = self._refused_logged.get(schedule.name)
        if last is not None and now - last < ERROR_LOG_INTERVAL:
            return
        self._refused_logged[schedule.name] = now
        logger.error(
            "cron %s: tick %s skipped, its job cannot be built: %s (the other schedules go on; "
            "logged at most every %.0f s)",
            schedule.name,
            schedule.job_id(tick),
            exc,
            ERROR_LOG_INTERVAL,
        )

    def _next_due_ms(self) -> int | None:
        upcoming = [tick for tick in self._upcoming.values() if tick is not None]
        return min(upcoming) * 1000 if upcoming else None

    def _report(self, fire: Fire, reply: FireOutcome) -> None:
        if reply.outcome in ("fired", "released") and reply.job_status:
            announce(fire.spec, reply.job_status, tasks=self.tasks)
        if reply.outcome == "unknown" and not self._retiring:  # (retiring: a tombstone expired, nothing owed)
            # Redis lost the schedule (restarted without persistence, or flushed): register it again.
            logger.warning("cron %s: missing from Redis; registering it again", fire.name)
            self._synced = False
        else:
            log_reply(fire, reply, self.catchup_ms)

    # -- heartbeat ------------------------------------------------------------------------------
    def info(self, last_tick_ms: int) -> dict[str, object]:
        """What the admin shows about this beat."""
        host, pid, _ = self.name.rsplit(":", 2)
        return {
            "host": host,
            "pid": pid,
            "kind": self.kind,
            "started": self._started_ms,
            "last_tick": last_tick_ms,
            "schedules": len(self.schedules),
        }

    def heartbeat(self, now_ms: int) -> None:
        """Publish this beat's info, stamped with the server time ``now_ms``."""
        self._started_ms = self._started_ms or now_ms
        self.crons.publish_beat(self.name, self.info(now_ms), self.settings.cron_beat_ttl, now_ms)
        self._heartbeat_due = self._clock() + self.settings.cron_beat_heartbeat

    def _heartbeat_if_due(self, now_ms: int) -> bool:
        if self._clock() >= self._heartbeat_due:
            self.heartbeat(now_ms)
            return True
        return False

    def wait_ms(self, result: TickResult) -> int:
        """How long to sleep after ``result``: until the next tick, or the next heartbeat if sooner."""
        until_heartbeat = max(0, int((self._heartbeat_due - self._clock()) * 1000))
        return min(result.sleep_ms(), until_heartbeat)

    # -- the loop -------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Make ``run()`` return (at once: the beat holds no work in progress)."""
        self._stopping.set()

    def step(self, now_ms: int | None = None) -> int:
        """One turn of ``run()``: register the schedules if needed, fire what is due, heartbeat if
        due. Returns how long to sleep, ms. ``now_ms`` stands for the server clock, as in ``tick()``
        (the chaos suite's clock simulation drives beats this way)."""
        begun = self._clock()
        try:
            if not self._synced:
                self.sync(now_ms)
            elif self._reload_wanted:
                self.reload(now_ms)
            result = self.tick(now_ms)
            try:
                # A runtime schedule changed: every beat sees it within a heartbeat.
                stale = self._heartbeat_if_due(result.now_ms) and self.runtime.stale()
            except Exception:
                # On Redis Cluster the heartbeat's keys may be on a node that is down while the queues
                # are not: the ticks that come while the beat backs off are owed, as after a failed fire.
                self._replaying.update(schedule.name for schedule in self.schedules)
                raise
            if stale:
                self.reload(now_ms if now_ms is not None else result.now_ms)
                result.next_due_ms = self._next_due_ms()
            return self.wait_ms(result)
        finally:
            if self._clock() - begun > SLOW_CALL_S:  # it waited on Redis: what came meanwhile is owed
                self._replaying.update(schedule.name for schedule in self.schedules)

    def run(self) -> None:
        """Register the schedules, then fire ticks on time until ``request_stop()``."""
        logger.info("cron beat started: %d schedule(s), redis %s", len(self.schedules), self.settings.safe_redis_url)
        while not self.stopping:
            try:
                wait_ms = self.step()
                self._throttle.succeeded()
            except redis.RedisError as exc:  # unreachable, or refusing writes (READONLY, OOM): retry
                wait_ms = int(self._throttle.failed("cron beat talking to Redis", exc) * 1000)
            except Exception:
                logger.exception("cron beat: unexpected error; continuing")
                wait_ms = 1000
            self._stopping.wait(wait_ms / 1000)
        self._withdraw()
        logger.info("cron beat stopped")

    def _withdraw(self) -> None:
        """Leave the list of live beats at once (best effort: otherwise the heartbeat expires)."""
        try:
            self.crons.withdraw_beat(self.name)
        except REDIS_ERRORS as exc:
            logger.debug("cron beat %s: could not withdraw its heartbeat: %s", self.name, exc)
