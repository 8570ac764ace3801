"""The scripts acting on one given job touch only keys declared in KEYS (read with MONITOR): the
queue's keys and the job's own, the per-minute counts included (one queue-level hash)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
import redis

from tempotask_django.storage.records import Finish, JobSpec
from tests.conftest import _test_url
from tests.helpers import MONITOR_ARGUMENT, MONITOR_LINE, finish

pytestmark = pytest.mark.redis

Q = "default"
NO_KEY = {"time"}
ALL_KEYS = {"exists", "del", "unlink"}


def spec(job_id: str, **options) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=Q, data=json.dumps({"a": 1}), **options)


def scripts_run(action: Callable[[], object]) -> list[tuple[list[str], list[list[str]]]]:
    """Each script ``action()`` ran: (the KEYS it declared, the commands it ran)."""
    client = redis.Redis.from_url(_test_url(), decode_responses=True)
    marker = f"tempotask-test-end-{uuid.uuid4().hex}"
    runs: list[tuple[list[str], list[list[str]]]] = []
    with client.monitor() as monitor:
        action()
        client.echo(marker)
        while True:
            found = MONITOR_LINE.match(monitor.connection.read_response())
            assert found
            _, source, rest = found.groups()
            args = [arg.replace('\\"', '"') for arg in MONITOR_ARGUMENT.findall(rest)]
            if [arg.lower() for arg in args] == ["echo", marker]:
                return runs
            if args and args[0].lower() == "evalsha":
                runs.append((args[3 : 3 + int(args[2])], []))
            elif source == "lua" and runs:
                runs[-1][1].append(args)


def keys_of(command: list[str]) -> list[str]:
    name = command[0].lower()
    if name in NO_KEY:
        return []
    return command[1:] if name in ALL_KEYS else [command[1]]


def undeclared(store, runs) -> list[tuple[str, str]]:
    """(command, key) for each key a script touched without declaring it."""
    return [
        (command[0], key)
        for declared, commands in runs
        for command in commands
        for key in keys_of(command)
        if key not in declared
    ]


@pytest.mark.one_server
def test_log_delete_and_fail_touch_only_declared_keys(store):
    store.enqueue_many([spec("a"), spec("b", max_attempts=3), spec("c")])
    logged = scripts_run(lambda: store.append_log(Q, "a", json.dumps("hello")))
    deleted = scripts_run(lambda: store.delete_job(Q, "a"))
    (job,) = store.claim(Q, "w1", 1).jobs
    error = json.dumps({"attempt": 1, "type": "ValueError", "message": "x", "traceback": ""})
    failed = scripts_run(lambda: finish(store, "w1", [Finish(Q, job["entry"], "b", False, error, 60_000)]))
    store.delete_job(Q, "b")
    emptied = scripts_run(lambda: store.delete_job(Q, "c"))  # the last job: the queue is forgotten
    assert any(c[0].lower() == "unlink" and store.keys(Q).seq in c for _, commands in emptied for c in commands)
    for runs in (logged, deleted, failed, emptied):
        assert [commands for _, commands in runs if commands]  # (a first EVALSHA may be refused: NOSCRIPT)
        assert undeclared(store, runs) == []


@pytest.mark.one_server
def test_the_cron_scripts_touch_only_declared_keys(store):
    from tempotask_django import add_cron, delete_cron, pause_cron, run_cron_now, update_cron
    from tempotask_django.cron import CronBeat

    def changes() -> None:
        add_cron("rt", "record", "* * * * * *", overlap="queue")
        cron_beat = CronBeat([])
        cron_beat.sync()
        now = store.server_time_ms()
        for step in range(1, 4):  # fired, held, skipped, then released
            cron_beat.tick(now + step * 1000)
        run_cron_now("rt")
        update_cron("rt", cron="* * * * * */5")
        update_cron("rt", queue="other")
        pause_cron("rt")
        delete_cron("rt")

    runs = scripts_run(changes)
    assert len([commands for _, commands in runs if commands]) >= 8
    assert undeclared(store, runs) == []
