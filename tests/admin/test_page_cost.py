"""No dashboard page reads a whole stream or status set, or scans the keyspace: what a page asks of
Redis stays the same whether a queue holds a hundred jobs or thousands.

Every command Redis runs for a request, those inside Lua scripts included, is read with MONITOR
on the test database.
"""

from __future__ import annotations

import pytest

from tempotask_django import api
from tempotask_django.job import JobStatus
from tempotask_django.storage.connection import get_default_store
from tests.admin.conftest import admin_url, client_for
from tests.conftest import _test_url
from tests.helpers import CommandLog, drain

pytestmark = [pytest.mark.django_db, pytest.mark.redis, pytest.mark.slow]

# Largest slice of a status set or stream one command may read (a list page reads 50).
MOST_READ_AT_ONCE = 1000
ZSET_RANGES = {"zrange", "zrevrange", "zrangebyscore", "zrevrangebyscore", "zrangebylex", "zrevrangebylex"}


def fill(total: int) -> None:
    """``total`` completed jobs in "default", and ``total`` waiting and ``total`` delayed ones in "other"."""
    store = get_default_store()
    have = store.inspect.count_jobs("default", "completed")
    api.add_jobs([{"name": "noop"}] * (total - have), on_commit=False)
    drain(["default"], concurrency=8)
    api.add_jobs([{"name": "noop", "queue": "other"}] * (total - have), on_commit=False)
    api.add_jobs([{"name": "noop", "queue": "other", "delay": 3600}] * (total - have), on_commit=False)
    assert store.inspect.count_jobs("default", "completed") == total
    assert store.inspect.count_jobs("other", "waiting") == store.inspect.count_jobs("other", "delayed") == total


def pages() -> dict[str, str]:
    url = admin_url
    return {
        "overview": url("tempotask_overview"),
        "overview_json": url("tempotask_overview_data"),
        "workers": url("tempotask_workers"),
        "crons": url("tempotask_crons"),
        "completed": url("tempotask_job_list", "default", "completed"),
        "completed_page_2": url("tempotask_job_list", "default", "completed") + "?p=2",
        "failed": url("tempotask_job_list", "default", "failed"),
        "waiting": url("tempotask_job_list", "other", "waiting"),
        "delayed": url("tempotask_job_list", "other", "delayed"),
        "processing": url("tempotask_job_list", "other", "processing"),
        "search": url("tempotask_job_list", "other", "waiting") + "?q=probe-failed",
        "job": url("tempotask_job", "default", "probe-failed"),
        "confirm_purge": url("tempotask_queue_purge", "default", "completed"),
    }


def too_wide(args: list[str], big_keys: set[str]) -> str | None:
    """Why a command reads too much (or the whole keyspace), or None when it is bounded."""
    name, lowered = args[0].lower(), [arg.lower() for arg in args]
    if name in {"keys", "scan"}:
        return "scans the keyspace"
    if len(args) < 2 or args[1] not in big_keys:
        return None
    if "limit" in lowered:
        count = int(args[lowered.index("limit") + 2])
        return None if 0 <= count <= MOST_READ_AT_ONCE else "reads without a bound"
    if name in {"xrange", "xrevrange"}:
        count = int(args[lowered.index("count") + 1]) if "count" in lowered else -1
        return None if 0 <= count <= MOST_READ_AT_ONCE else "reads a whole stream"
    if name in {"zrange", "zrevrange"} and not {"byscore", "bylex"} & set(lowered):
        start, stop = int(args[2]), int(args[3])
        return None if 0 <= start <= stop < start + MOST_READ_AT_ONCE else "reads a whole set"
    if name in ZSET_RANGES | {"smembers", "hgetall", "sort", "zscan", "sscan", "hscan", "xread", "xreadgroup"}:
        return "reads a whole set"
    return None


def test_page_costs_do_not_grow_with_the_number_of_jobs(superuser, redis_client, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 10_000}
    api.add_job("always_fails", {}, job_id="probe-failed", on_commit=False)
    drain(["default"])
    store = get_default_store()
    big_keys = {store.keys(q).status(s) for q in ("default", "other") for s in JobStatus}
    big_keys |= {store.keys(q).stream for q in ("default", "other")}
    log = CommandLog(_test_url())
    client = client_for(superuser)

    def measure() -> dict[str, list[list[str]]]:
        commands = {}
        for name, url in pages().items():
            client.get(url)  # once first: connections opened, scripts loaded
            response, commands[name] = log.during(lambda url=url: client.get(url))
            assert response.status_code == 200, name
        return commands

    fill(100)
    small = measure()
    fill(3_000)
    large = measure()
    for name, commands in large.items():
        assert commands, f"{name}: no command seen (is MONITOR working?)"
        for args in commands:
            assert too_wide(args, big_keys) is None, f"{name}: {' '.join(args)} {too_wide(args, big_keys)}"
        assert len(commands) == len(small[name]), (name, len(small[name]), len(commands))
