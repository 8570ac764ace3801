"""Lua scripts: one file per atomic state change, each prefixed with the shared lib.lua.

Scripts are read from the package once and registered per client; redis-py runs them with
EVALSHA and loads them on NOSCRIPT (after a Redis restart, for instance).
"""

from __future__ import annotations

import functools
from importlib import resources

from redis import Redis
from redis.commands.core import Script

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
    "stats",
    "cron_register",
    "cron_fire",
    "cron_control",
)


@functools.cache
def script_source(name: str) -> str:
    """The full text of script ``name``: lib.lua followed by ``name``.lua."""
    lua = resources.files("tempotask_django.storage") / "lua"
    return (lua / "lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """The scripts registered on one client, as attributes: ``scripts.claim(keys, args)``."""

    def __init__(self, client: Redis) -> None:
        for name in SCRIPT_NAMES:
            setattr(self, name, client.register_script(script_source(name)))

    enqueue: Script
    claim: Script
    complete: Script
    fail: Script
    reclaim: Script
    renew: Script
    sweep: Script
    delete: Script
    retry: Script
    log: Script
    purge: Script
    forget_consumers: Script
    stats: Script
    cron_register: Script
    cron_fire: Script
    cron_control: Script
