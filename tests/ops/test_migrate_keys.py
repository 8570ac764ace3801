"""``manage.py tempotask migrate-keys``: job logs and errors of the old layout (``P:{Q}:job:<id>:logs``)
move to ``P:{Q}:logs:<id>``, once, without touching any record."""

from __future__ import annotations

import json

import pytest

from tempotask_django import api
from tests.helpers import drain
from tests.ops.conftest import tempotask

pytestmark = pytest.mark.redis

Q = "default"


def to_old_layout(store, job_id: str, kind: str) -> str:
    """Put a job's list back where the old layout kept it; its old key."""
    keys = store.keys(Q)
    old = f"{keys.job_prefix}{job_id}:{kind}"
    store.client.rename(keys.logs(job_id) if kind == "logs" else keys.errors(job_id), old)
    return old


def test_old_lists_move_once_records_stay_and_newer_lines_stay_last(store, ledger):
    api.add_job("always_fails", {}, job_id="a", on_commit=False)
    api.add_job("echoes", {"text": "hi"}, job_id="b", on_commit=False)
    api.add_job("noop", {}, job_id="c:logs", delay=3600, on_commit=False)  # a record named like an old list
    drain([Q])
    keys = store.keys(Q)
    record = store.client.hgetall(keys.job("c:logs"))
    to_old_layout(store, "a", "errors")
    to_old_layout(store, "b", "logs")
    store.client.hdel(keys.job("c:logs"), "queue")  # the migration must leave it as it is, damaged or not
    record.pop("queue")
    newer = json.dumps({"t": 1, "message": "written by an upgraded worker"})
    store.client.rpush(keys.logs("b"), newer)

    assert tempotask("migrate-keys") == "2 job log/error list(s) moved to the new key layout."

    assert [error["type"] for error in map(json.loads, store.client.lrange(keys.errors("a"), 0, -1))] == [
        "ValueError",
        "ValueError",
    ]
    logs = [json.loads(line)["message"] for line in store.client.lrange(keys.logs("b"), 0, -1)]
    assert logs == ["hi", {"text": "hi"}, "written by an upgraded worker"]
    assert store.client.type(keys.job("c:logs")) == "hash" and store.client.hgetall(keys.job("c:logs")) == record
    assert not store.client.exists(f"{keys.job_prefix}a:errors:errors", f"{keys.job_prefix}b:logs")
    assert tempotask("migrate-keys") == "0 job log/error list(s) moved to the new key layout."


def test_an_old_list_whose_new_key_holds_something_else_is_left_and_named(store, capsys):
    keys = store.keys(Q)
    store.client.sadd(store.global_keys.queues, Q)
    store.client.rpush(f"{keys.job_prefix}d:errors", "{}")
    store.client.set(keys.errors("d"), "not a list")
    assert tempotask("migrate-keys") == "0 job log/error list(s) moved to the new key layout."
    assert f"left in place: {keys.job_prefix}d:errors" in capsys.readouterr().err
    assert store.client.lrange(f"{keys.job_prefix}d:errors", 0, -1) == ["{}"]
