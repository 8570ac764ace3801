"""Helpers for a project's own tests: run jobs in the test, isolate tempotask's keys, immediate mode.

- ``run_jobs(queues=None, max_jobs=None)`` runs every due job of the queues in the calling thread
  until none is left, and returns what ran;
- ``isolated_keyspace()`` gives the code inside it a KEY_PREFIX of its own, and deletes its keys after;
- ``immediate_mode()`` turns on ``TEMPOTASK["MODE"] = "immediate"`` on an empty in-memory Redis.

The pytest plugin (pytest_plugin.py) wraps the last two as fixtures. See docs/testing.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.test.utils import override_settings

from tempotask_django.api import lookup_order
from tempotask_django.conf import get_settings, raw_settings
from tempotask_django.job import Job
from tempotask_django.storage import memory
from tempotask_django.storage.connection import get_default_store
from tempotask_django.worker.inprocess import InProcessRunner

# Keys deleted per round trip when an isolated keyspace is cleaned up.
DELETE_BATCH = 500
# Longest KEY_PREFIX the settings accept (conf.PREFIX_PATTERN).
MAX_PREFIX_LENGTH = 60


def run_jobs(queues: Iterable[str] | str | None = None, max_jobs: int | None = None) -> list[Job]:
    """Run every due job of ``queues`` in this thread, one at a time, until none is left.

    ``queues``: a queue name or several, first listed first; None runs every known queue
    (DEFAULT_QUEUE first, then the others alphabetically). ``max_jobs`` stops after that many
    attempts. Jobs the running jobs enqueue (``ctx.add_job``) run too when their queue is one of
    ``queues`` and they are due. A failed attempt's retry runs in the same call when it is due at
    once (``retry_delay=0``); a later one stays delayed, as does any job whose time has not come.

    Handlers run in the calling thread, on its database connection: a test's objects and open
    transaction are theirs too. Signals are sent as a worker sends them.

    Returns one Job per attempt run, in order, each read after its attempt was recorded (its
    status, result, errors and logs then): a job retried once appears twice.

    Example::

        send_welcome.enqueue({"user_id": user.pk})
        [job] = run_jobs("emails")
        assert job.status == "completed"
    """
    names = [queues] if isinstance(queues, str) else list(queues) if queues is not None else lookup_order()
    return InProcessRunner(names).run(max_jobs)


@contextmanager
def isolated_keyspace(prefix: str | None = None) -> Iterator[str]:
    """Use a KEY_PREFIX of its own (``prefix``, or the current one plus a random suffix) inside the
    block; every key under it is deleted when the block ends. Yields the prefix.

    Tests that share one Redis (parallel runs, several test databases on one server) then never see
    each other's jobs, and a test starts with empty queues.
    """
    chosen = prefix or _unique_prefix(get_settings().key_prefix)
    with override_settings(TEMPOTASK={**raw_settings(), "KEY_PREFIX": chosen}):
        try:
            yield chosen
        finally:
            _delete_keys(chosen)


@contextmanager
def immediate_mode(**overrides: Any) -> Iterator[None]:
    """Turn on ``TEMPOTASK["MODE"] = "immediate"`` (with ``overrides``, other TEMPOTASK keys) inside
    the block, on an in-memory Redis emptied before and after it."""
    memory.flush()
    with override_settings(TEMPOTASK={**raw_settings(), **overrides, "MODE": "immediate"}):
        try:
            yield
        finally:
            memory.flush()


def _unique_prefix(base: str) -> str:
    suffix = f"-{secrets.token_hex(4)}"
    return base[: MAX_PREFIX_LENGTH - len(suffix)] + suffix


def _delete_keys(prefix: str) -> None:
    # Every key the store writes starts with "<prefix>:" (storage/keys.py); the prefix holds no
    # glob character (conf.PREFIX_PATTERN), so it matches itself only.
    client = get_default_store().client
    batch: list[str] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=DELETE_BATCH):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)
