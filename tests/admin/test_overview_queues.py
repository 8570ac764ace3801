"""The overview's queue list: queues left with nothing are pruned from the set of queue names, so it
reads only queues in use."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tempotask_django import api
from tests.admin.conftest import client_for
from tests.helpers import drain

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def registered(store) -> set[str]:
    return set(store.client.smembers(store.global_keys.queues))


def test_the_overview_leaves_out_queues_left_with_nothing(store, superuser):
    for n in range(5):
        job_id = api.add_job("add", {"a": 1, "b": 2}, queue=f"tenant-{n}", on_commit=False)
        if n:
            api.delete_job(job_id, queue=f"tenant-{n}")
    api.add_job("add", {"a": 1, "b": 2}, on_commit=False)

    response = client_for(superuser).get(reverse("admin:tempotask_overview"))
    shown = [queue.queue for queue in response.context["queues"]]
    assert "tenant-0" in shown and "default" in shown
    assert not {f"tenant-{n}" for n in range(1, 5)} & set(shown)
    assert not {f"tenant-{n}" for n in range(1, 5)} & registered(store)

    api.add_job("add", {"a": 1, "b": 2}, queue="tenant-3", on_commit=False)  # comes back with its next job
    assert "tenant-3" in registered(store)
    drain(["tenant-3"])
    assert api.queue_stats("tenant-3").completed == 1
