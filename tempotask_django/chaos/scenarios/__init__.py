"""The scenario registry.

A scenario is a function ``run(lab, params, rng) -> Result`` registered with ``@scenario``, with its
parameters per profile ("short" runs in CI, "long" by hand). The modules below register themselves
on import; a new scenario is one new module listed in ``MODULES``. Example::

    @scenario("two_beats", "2 runcron processes, one killed", short={"minutes": 2}, long={"minutes": 10})
    def two_beats(lab: Lab, params: dict, rng: random.Random) -> Result:
        result = Result()
        beat = lab.start("runcron")
        ...
        result.must_equal("ticks fired twice", doubled, 0)
        return result

``lab`` (see lab.py) gives a fresh Redis, the ledger and ``lab.start(command, *args)``; whatever the
scenario starts is killed when it returns. Seeded ``rng`` keeps the workload the same on every run.
A scenario may also run in-process only, on the lab's Redis (beats_simulated.py drives cron beats on
a simulated clock).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tempotask_django.chaos.lab import Lab
from tempotask_django.chaos.report import Result

PROFILES = ("short", "long")
MODULES = (
    "kills",
    "redis_restarts",
    "shutdown",
    "signal_storm",
    "bad_input",
    "memory",
    "soak",
    "shrinking_history",
    "paused_worker",
    "time_limits",
    "cancel",
    "beats",
    "beats_simulated",
    "beats_outages",
    "limits",
    "dropped_replies",
    "cluster_failover",
    "sentinel_failover",
    "partitions",
)

Runner = Callable[[Lab, dict[str, Any], random.Random], Result]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Runner
    params: dict[str, dict[str, Any]]  # profile -> parameters
    lab: dict[str, Any] = field(default_factory=dict)  # Lab options, e.g. {"appendonly": True}

    def title_for(self, profile: str) -> str:
        return self.title.format(**self.params[profile])


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, title: str, *, short: dict[str, Any], long: dict[str, Any], **lab_options: Any
) -> Callable[[Runner], Runner]:
    """Register a scenario. ``title`` may use the parameters: "{jobs:,} jobs, {kills} SIGKILLs"."""

    def register(run: Runner) -> Runner:
        if name in SCENARIOS:
            raise ValueError(f"two chaos scenarios are named {name!r}")
        SCENARIOS[name] = Scenario(name, title, run, {"short": short, "long": long}, lab_options)
        return run

    return register


def load_all() -> dict[str, Scenario]:
    for module in MODULES:
        importlib.import_module(f"tempotask_django.chaos.scenarios.{module}")
    return SCENARIOS
