"""Upgrade of the key layout: job logs and errors moved from ``P:{Q}:job:<id>:logs`` (and ``:errors``)
to ``P:{Q}:logs:<id>`` (and ``errors:<id>``), so that no job id can name another job's key (see keys.py).

``migrate_keys`` moves every list still in the old layout. It is idempotent (a moved list is no longer
found; running it again moves only what old workers wrote meanwhile), bounded (one short script per
list, batched; SCAN never blocks the server) and safe while workers run: lines that upgraded workers
already wrote to the new key are kept after the old ones. Records are hashes and are never moved,
even when a job's id ends in ``:logs`` or ``:errors``: the script moves lists only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from redis import Redis
from redis.commands.core import Script

from tempotask_django.storage.keys import GlobalKeys, QueueKeys

OLD_SUFFIXES = (":logs", ":errors")
# Script calls sent per round trip.
BATCH = 500
SCAN_COUNT = 1000


@dataclass
class MigrationResult:
    """What ``migrate_keys`` did: lists moved, and old-layout lists left alone because their new key holds
    something else than a list (named, to look at by hand)."""

    moved: int = 0
    conflicts: list[str] = field(default_factory=list)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def new_key(keys: QueueKeys, old_key: str) -> str | None:
    """The new-layout key of an old ``job_prefix + id + suffix`` key; None for any other key."""
    if not old_key.startswith(keys.job_prefix):
        return None
    rest = old_key[len(keys.job_prefix) :]
    for suffix in OLD_SUFFIXES:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            job_id = rest[: -len(suffix)]
            return keys.logs(job_id) if suffix == ":logs" else keys.errors(job_id)
    return None


def migrate_keys(client: Redis, prefix: str, queues: list[str] | None = None) -> MigrationResult:
    """Move the old-layout log and error lists of ``queues`` (default: every queue in ``P:queues``)."""
    source = (resources.files("tempotask_django.storage") / "lua" / "migrate_list.lua").read_text()
    script = client.register_script(source)
    client.script_load(source)  # a Redis Cluster pipeline does not load it: every master gets it now
    if queues is None:
        queues = [str(queue) for queue in client.smembers(GlobalKeys(prefix).queues)]
    result = MigrationResult()
    for queue in sorted(queues):
        keys = QueueKeys(prefix, queue)
        pending: list[tuple[str, str]] = []
        for suffix in OLD_SUFFIXES:
            pattern = f"{_glob_escape(keys.job_prefix)}*{suffix}"
            for old in client.scan_iter(match=pattern, count=SCAN_COUNT):
                old = old.decode() if isinstance(old, bytes) else old
                new = new_key(keys, old)
                if new is not None:
                    pending.append((old, new))
                if len(pending) >= BATCH:
                    _move(client, script, pending, result)
                    pending = []
        _move(client, script, pending, result)
    return result


def _move(client: Redis, script: Script, pairs: list[tuple[str, str]], result: MigrationResult) -> None:
    if not pairs:
        return
    pipe = client.pipeline(transaction=False)
    for old, new in pairs:
        script(keys=[old, new], client=pipe)
    for (old, _), reply in zip(pairs, pipe.execute(), strict=True):
        if reply == 1:
            result.moved += 1
        elif reply == -1:
            result.conflicts.append(old)
