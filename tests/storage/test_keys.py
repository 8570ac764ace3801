"""Every key of one queue shares the queue's hash tag (one Redis Cluster slot); the rest are global."""

from __future__ import annotations

import re

import pytest
from redis.crc import key_slot

from tempotask_django import api, run_cron_now
from tempotask_django.cron import CronBeat
from tests.helpers import drain

pytestmark = pytest.mark.redis

PREFIX = "tempotask-test"
GLOBAL = re.compile(rf"^{PREFIX}:(queues|workers|crons|beats|worker:[^{{}}]+|beat:[^{{}}]+)$")
QUEUE_KEY = re.compile(rf"^{PREFIX}:\{{(?P<queue>[^{{}}]+)\}}:(?P<rest>[^{{}}]+)$")


def kind(rest: str) -> str:
    """What a queue key holds: "job", "logs", "children", "minutes", "waiting"... (ids left out)."""
    return rest.split(":")[0]


def test_every_key_of_a_queue_carries_its_hash_tag(store, ledger):
    CronBeat().sync()  # the test app's schedules: hourly_sweep (default) and nightly_digest (crons)
    run_cron_now("hourly_sweep")
    api.add_job("add", {"a": 1, "b": 2}, on_commit=False)
    api.add_job("always_fails", {}, on_commit=False)  # errors, and a retry through delayed
    api.add_job("fails_with_backoff", {}, on_commit=False)  # stays delayed for its retry
    api.add_job("parent", {"children": 2}, on_commit=False)  # logs, children
    api.add_job("echoes", {"text": "hi"}, on_commit=False)
    api.add_job("add", {"a": 1, "b": 2}, queue="other", on_commit=False)
    drain(["default", "other"])
    api.add_job("add", {"a": 1, "b": 2}, delay=3600, on_commit=False)
    api.add_jobs([{"name": "add", "data": {"a": 1, "b": 2}}] * 2, on_commit=False)
    [running] = store.claim("default", "a-worker", 1).jobs  # leased: processing, pending in the stream
    assert store.inspect.queue_stats("default").waiting == 1
    store.pause_queue("other")
    store.register_worker("host:1:abc", {"host": "host"}, ttl=30)

    keys = [key for key in store.client.scan_iter(count=1000) if key.startswith(f"{PREFIX}:")]
    queue_keys = {key: QUEUE_KEY.match(key) for key in keys if not GLOBAL.match(key)}
    assert all(queue_keys.values()), [key for key, found in queue_keys.items() if not found]
    by_queue: dict[str, set[str]] = {}
    for key, found in queue_keys.items():
        by_queue.setdefault(found["queue"], set()).add(key)
    assert set(by_queue) == {"default", "other", "crons"}
    for queue, names in by_queue.items():
        assert {key_slot(name.encode()) for name in names} == {key_slot(queue.encode())}, queue
    kinds = {kind(found["rest"]) for found in queue_keys.values() if found["queue"] == "default"}
    assert kinds >= {
        "job",
        "logs",
        "errors",
        "children",
        "waiting",
        "delayed",
        "processing",
        "completed",
        "failed",
        "stream",
        "wake",
        "seq",
        "minutes",
        "cron",
    }, kinds
    assert f"{PREFIX}:{{other}}:paused" in keys
    assert {key for key in keys if GLOBAL.match(key)} == {
        f"{PREFIX}:queues",
        f"{PREFIX}:crons",
        f"{PREFIX}:workers",
        f"{PREFIX}:worker:host:1:abc",
    }
    assert store.keys("default").job(running["id"]) in keys
