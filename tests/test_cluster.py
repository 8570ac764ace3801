"""Cluster mode on a real Redis Cluster (3 masters, 1 replica each, started once per session by the
suite itself): producers, workers, cron beats, cancels and the admin with queues on different
masters, and a failover after which everything carries on."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tempotask_django import JobStatus, get_job
from tempotask_django.storage.connection import get_default_store, reset_default_store
from tempotask_django.worker import Worker
from tests.cluster_servers import ClusterSetup
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis

# Queue names whose hash tags land on three different masters of a cluster whose slots are split
# evenly (tests/cluster_servers.py): {a} 15495, {b} 3300, {c} 7365.
QUEUES = ["a", "b", "c"]


def ledger_context() -> dict:
    """The test app's context, its ledger on the suite's own (standalone) Redis."""
    from tests import settings as test_settings
    from tests.testapp.context import Ledger

    return {"ledger": Ledger(test_settings.TEMPOTASK["REDIS_URL"]), "greeting": "hello"}


@pytest.fixture(scope="session")
def cluster_setup(tmp_path_factory):
    try:
        setup = ClusterSetup(tmp_path_factory.mktemp("cluster")).start()
    except RuntimeError as exc:  # no redis-server to start
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield setup
    setup.stop()


@pytest.fixture
def cluster(cluster_setup, settings):
    cluster_setup.flush()
    settings.TEMPOTASK = {
        **settings.TEMPOTASK,
        "REDIS_MODE": "cluster",
        "REDIS_URL": cluster_setup.url,
        "STALLED_TIMEOUT": 2,
        "MAX_JOBS_PER_STATUS": 100_000,
        "CONTEXT": "tests.test_cluster.ledger_context",
    }
    reset_default_store()
    yield cluster_setup
    reset_default_store()


def masters_of(cluster, queues) -> set[int]:
    return {cluster.port_of_key(get_default_store().keys(queue).waiting) for queue in queues}


def test_queues_land_on_three_masters(cluster):
    assert len(masters_of(cluster, QUEUES)) == 3


def test_enqueue_single_and_bulk_and_a_worker_drains_queues_on_every_master(cluster):
    single = [tasks.noop.enqueue({"n": n}, queue=queue) for n, queue in enumerate(QUEUES)]
    bulk = tasks.noop.enqueue_many([{"n": n} for n in range(30)], queue="b")
    bulk += [tasks.noop.enqueue_many([{"n": n} for n in range(10)], queue=queue)[0] for queue in QUEUES]
    assert all(get_job(job_id).status == JobStatus.WAITING for job_id in single + bulk)
    worker = Worker(QUEUES, concurrency=4)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: all(get_job(j).status == JobStatus.COMPLETED for j in single + bulk), 20, 0.1)
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert set(get_default_store().client.smembers(get_default_store().global_keys.queues)) == set(QUEUES)


class Workers:
    """Worker threads serving ``queues``; stopped by ``stop()``."""

    def __init__(self, *queue_sets: list[str], concurrency: int = 2) -> None:
        self.workers = [Worker(queues, concurrency=concurrency) for queues in queue_sets]
        self.threads = [threading.Thread(target=worker.run) for worker in self.workers]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.request_stop()
        for thread in self.threads:
            thread.join(timeout=15)


def xread_calls(cluster) -> int:
    total = 0
    for port in cluster.master_ports():
        with cluster.client_of(port) as client:
            total += int(client.info("commandstats").get("cmdstat_xread", {}).get("calls", 0))
    return total


def test_an_idle_worker_wakes_at_once_for_a_job_on_any_master_without_polling(cluster):
    workers = Workers(QUEUES)
    try:
        warm = tasks.noop.enqueue(queue="a")
        wait_until(lambda: get_job(warm).status == JobStatus.COMPLETED, 10, 0.05)
        time.sleep(0.5)
        before = xread_calls(cluster)
        time.sleep(2)
        idle_reads = xread_calls(cluster) - before
        latencies = []
        for queue in QUEUES * 3:
            time.sleep(0.2)  # the worker is blocked again
            job_id = tasks.noop.enqueue(queue=queue)
            wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, 10, 0.005)  # noqa: B023
            job = get_job(job_id)
            latencies.append((job.started_at - job.enqueued_at).total_seconds())
    finally:
        workers.stop()
    # Idle, a worker keeps one blocking read per queue in flight, each on its master, renewed when
    # it times out (the worker's loop waits up to a second): a few reads per second, no polling.
    # The jobs still start within milliseconds of their enqueue: a read returns as the job arrives.
    assert idle_reads <= 3 * len(QUEUES) * 2, idle_reads
    assert max(latencies) < 0.25, latencies
    assert sorted(latencies)[len(latencies) // 2] < 0.05, latencies


def test_a_cron_beat_fires_on_the_cluster(cluster):
    from tempotask_django.cron import CronBeat
    from tests.cron.support import only_schedules

    beat = CronBeat(only_schedules(every_second={"task": "noop", "cron": "* * * * * *", "queue": "c"}))
    thread = threading.Thread(target=beat.run)
    thread.start()
    workers = Workers(["c"])
    try:
        start = int(time.time())
        wait_until(
            lambda: any(
                (job := get_job(f"cron:every_second:{second}")) is not None and job.status == JobStatus.COMPLETED
                for second in range(start, int(time.time()) + 1)
            ),
            15,
            0.1,
            "a tick to run",
        )
    finally:
        beat.request_stop()
        thread.join(timeout=15)
        workers.stop()


def test_a_cancel_reaches_the_worker_running_the_job_on_another_master(ledger, cluster):
    from tempotask_django import cancel_job

    workers = Workers(["a"], ["b"])
    try:
        job_id = tasks.loops.enqueue(queue="b")
        wait_until(lambda: ledger.entries("start"), 10, 0.05, "the job to start")
        assert cancel_job(job_id) == JobStatus.PROCESSING
        wait_until(lambda: get_job(job_id).status == JobStatus.CANCELLED, 10, 0.05, "the cancel")
    finally:
        workers.stop()
    assert ledger.entries("cleanup")[0]["cancel_requested"]


def test_the_admin_overview_and_a_job_page_render(cluster, admin_client):
    from django.urls import reverse

    job_id = tasks.add.enqueue({"a": 1, "b": 2}, queue="a", on_commit=False)
    tasks.noop.enqueue_many([{}] * 3, queue="c", on_commit=False)
    overview = admin_client.get(reverse("admin:tempotask_overview"))
    assert overview.status_code == 200
    shown = {stats.queue: stats for stats in overview.context["queues"]}
    assert (shown["a"].waiting, shown["c"].waiting) == (1, 3)
    assert admin_client.get(reverse("admin:tempotask_overview_data")).status_code == 200
    page = admin_client.get(reverse("admin:tempotask_job", args=["a", job_id]))
    assert page.status_code == 200 and job_id in page.content.decode()
    listing = admin_client.get(reverse("admin:tempotask_job_list", args=["c", "waiting"]))
    assert listing.status_code == 200
    assert admin_client.get(reverse("admin:tempotask_workers")).status_code == 200
