"""A runtime schedule changed at random while beats fire it, and how its ticks are judged.

The editor creates, edits (between expressions of known periods), pauses, resumes and deletes one
runtime schedule, and records each change with the server time the change took effect (by the
scripts' clock). Its timeline then says, for every second, which version was in force: the ticks
each active version owes (later than its start, up to the next change), and the stretches while it
was paused or deleted. A fired tick is judged against that timeline:

- a tick fired twice (any source) is a double;
- an owed tick never fired is lost; "lost that both versions contain" counts those that the
  expressions on both sides of an edit hold (the issue's promise: an edit never skips one);
- a tick in a paused or deleted stretch, or one of a version's stretch that is not that version's
  (a stale beat firing the old expression after the change) must never fire.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from tempotask_django.chaos.report import Result
from tempotask_django.chaos.ticks import Tick
from tempotask_django.cron import runtime
from tempotask_django.storage.crons import CronStore

ACTIVE_KINDS = ("add", "edit", "resume")


@dataclass(frozen=True)
class Change:
    at_ms: int  # when it took effect, server clock (the scripts' "now")
    kind: str  # add, edit, pause, resume, delete
    expression: str  # the expression in force from then on (the last one, while paused or deleted)


class Editor:
    """Random changes of one runtime schedule; ``expressions`` maps each expression to its period (s)."""

    def __init__(
        self, crons: CronStore, name: str, task: str, queue: str, expressions: Mapping[str, int], rng: random.Random
    ) -> None:
        self.crons, self.name, self.task, self.queue = crons, name, task, queue
        self.expressions = dict(expressions)
        self.rng = rng
        self.changes: list[Change] = []
        self.expression = next(iter(self.expressions))
        self.exists = self.paused = False

    def change(self, now_ms: int = 0) -> Change:
        """One random change allowed in the current state."""
        if not self.exists:
            return self.add(now_ms)
        if self.paused:
            return self._do(self.rng.choice(["resume", "resume", "delete"]), now_ms)
        return self._do(self.rng.choice(["edit", "edit", "edit", "pause", "delete"]), now_ms)

    def add(self, now_ms: int = 0) -> Change:
        self.expression = self.rng.choice(sorted(self.expressions))
        runtime.add_cron(
            self.name,
            self.task,
            self.expression,
            timezone="UTC",
            queue=self.queue,
            store=self.crons.store,
            now_ms=now_ms,
        )
        self.exists, self.paused = True, False
        return self._record("add", int(self._fields()["changed_at"]))

    def settle(self, now_ms: int = 0) -> Change | None:
        """Leave the schedule active (the end of the run must have ticks to count)."""
        if not self.exists:
            return self.add(now_ms)
        if self.paused:
            return self._do("resume", now_ms)
        return None

    def _do(self, kind: str, now_ms: int) -> Change:
        store = self.crons.store
        if kind == "edit":
            self.expression = self.rng.choice([e for e in sorted(self.expressions) if e != self.expression])
            runtime.update_cron(self.name, cron=self.expression, store=store, now_ms=now_ms)
            return self._record(kind, int(self._fields()["changed_at"]))
        if kind == "delete":
            runtime.delete_cron(self.name, store=store, now_ms=now_ms)
            self.exists = False
            return self._record(kind, int(self._fields()["deleted"]))
        self.crons.control(self.name, kind, now_ms=now_ms)
        self.paused = kind == "pause"
        fields = self._fields()
        return self._record(kind, int(fields["paused"] if kind == "pause" else fields["since"]))

    def _fields(self) -> dict[str, str]:
        return {
            str(k): str(v)
            for k, v in self.crons.client.hgetall(self.crons.store.keys(self.queue).cron(self.name)).items()
        }

    def _record(self, kind: str, at_ms: int) -> Change:
        change = Change(at_ms, kind, self.expression)
        self.changes.append(change)
        return change


@dataclass(frozen=True)
class Verdict:
    owed: int
    fired_once: int
    lost: int
    lost_in_both: int
    doubled: int
    while_paused: int
    while_deleted: int
    stale_version: int  # a tick in a version's stretch that is not that version's
    before_creation: int


def judge(changes: list[Change], periods: Mapping[str, int], fired: Counter[int], until_ms: int) -> Verdict:
    """Judge the ticks ``fired`` (epoch second -> times) against the timeline of ``changes``."""
    changes = sorted(changes, key=lambda change: change.at_ms)
    owed: set[int] = set()
    in_both: set[int] = set()
    wrong = {"pause": 0, "delete": 0, "stale": 0, "before": 0}
    for tick in fired:
        index = _stretch(changes, tick * 1000)
        if index < 0:
            wrong["before"] += 1
        elif changes[index].kind in ("pause", "delete"):
            wrong[changes[index].kind] += 1
        elif tick % periods[changes[index].expression]:
            wrong["stale"] += 1
    for index, change in enumerate(changes):
        if change.kind not in ACTIVE_KINDS:
            continue
        end = changes[index + 1].at_ms if index + 1 < len(changes) else until_ms
        end = min(end, until_ms)
        period = periods[change.expression]
        neighbours = []  # the periods of the versions this one borders through an edit
        if change.kind == "edit":
            neighbours.append(periods[changes[index - 1].expression])
        if index + 1 < len(changes) and changes[index + 1].kind == "edit":
            neighbours.append(periods[changes[index + 1].expression])
        for tick in range(change.at_ms // 1000 + 1, end // 1000 + 1):
            if tick % period == 0 and change.at_ms < tick * 1000 <= end:
                owed.add(tick)
                if any(tick % other == 0 for other in neighbours):
                    in_both.add(tick)
    lost = {tick for tick in owed if not fired[tick]}
    return Verdict(
        owed=len(owed),
        fired_once=sum(1 for tick in owed if fired[tick] == 1),
        lost=len(lost),
        lost_in_both=len(lost & in_both),
        doubled=sum(count - 1 for count in fired.values() if count > 1),
        while_paused=wrong["pause"],
        while_deleted=wrong["delete"],
        stale_version=wrong["stale"],
        before_creation=wrong["before"],
    )


def _stretch(changes: list[Change], at_ms: int) -> int:
    """The index of the change in force at ``at_ms`` (the last one strictly before it), -1: none."""
    found = -1
    for index, change in enumerate(changes):
        if change.at_ms < at_ms:
            found = index
    return found


def ticks_of(name: str, seen: Counter[Tick]) -> Counter[int]:
    return Counter({epoch: count for (tick_name, epoch), count in seen.items() if tick_name == name})


def without(name: str, seen: Counter[Tick]) -> Counter[Tick]:
    return Counter({tick: count for tick, count in seen.items() if tick[0] != name})


def edit_figures(
    result: Result, editor: Editor, periods: Mapping[str, int], sources: Mapping[str, Counter[Tick]], until_ms: int
) -> None:
    """The runtime schedule's figures, per source; the zeros the issue asks for are checked."""
    kinds = Counter(change.kind for change in editor.changes)
    result.figure(
        "runtime schedule changes (add, edit, pause, resume, delete)",
        [kinds[k] for k in ("add", "edit", "pause", "resume", "delete")],
    )
    for source, seen in sources.items():
        verdict = judge(editor.changes, periods, ticks_of(editor.name, seen), until_ms)
        result.figure(f"runtime ticks owed ({source})", verdict.owed)
        result.figure(f"runtime ticks fired exactly once ({source})", verdict.fired_once)
        result.must_equal(f"runtime ticks doubled ({source})", verdict.doubled, 0)
        result.must_equal(f"runtime ticks lost that both versions contain ({source})", verdict.lost_in_both, 0)
        result.must_equal(f"runtime ticks lost, any ({source})", verdict.lost, 0)
        result.must_equal(f"runtime ticks fired while paused ({source})", verdict.while_paused, 0)
        result.must_equal(f"runtime ticks fired while deleted ({source})", verdict.while_deleted, 0)
        result.must_equal(f"runtime ticks of a version no longer in force ({source})", verdict.stale_version, 0)
        result.must_equal(f"runtime ticks before creation ({source})", verdict.before_creation, 0)
