"""Partitioned queues (QUEUES PARTITIONS, tempotask_django/partitions.py) on a real Redis: placement by
id, spread, workers serving every partition, the API, the admin's breakdown and the N-change rule."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.urls import reverse
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from tempotask_django import JobStatus, api, cancel_job, delete_job, get_job, partitions, retry_job
from tempotask_django.conf import get_settings, validate
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.storage.connection import reset_default_store
from tempotask_django.storage.partition_counts import PartitionCountChanged
from tempotask_django.validation import queue_name
from tempotask_django.worker import Worker
from tests.helpers import drain, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis

N = 8


@pytest.fixture
def emails(settings, store):
    """QUEUES = {"emails": {"PARTITIONS": 8}}; returns the store."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": N, "CONCURRENCY": 1}}}
    reset_default_store()
    from tempotask_django.storage.connection import get_default_store

    return get_default_store()


def ids_in(index: int, count: int, how_many: int, prefix: str = "p") -> list[str]:
    """Job ids that map to partition ``index`` of ``count``."""
    found, n = [], 0
    while len(found) < how_many:
        candidate = f"{prefix}{index}-{n}"
        if partitions.index_for(candidate, count) == index:
            found.append(candidate)
        n += 1
    return found


def xread_calls(client) -> int:
    """XREAD calls the server (every master of a cluster) has answered."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        replies = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES).values()
    else:
        replies = [client.info("commandstats")]
    return sum(int(reply.get("cmdstat_xread", {}).get("calls", 0)) for reply in replies)


def per_partition(store, status: str = "waiting") -> list[int]:
    return [store.inspect.count_jobs(partitions.name("emails", i, N), status) for i in range(N)]


def test_partition_names_cannot_be_user_queue_names_and_tags_spread_over_the_slots():
    assert partitions.name("emails", 3, 8) == "emails~3of8"
    with pytest.raises(ValueError):
        queue_name("emails~3of8")  # the separator is refused in a queue name: no collision possible
    assert partitions.parse("emails~3of8") == partitions.Partition("emails", 3, 8)
    assert partitions.parse("emails") is None and partitions.parse("a~9of8") is None
    for count in (1, 3, 6, 8, 100):
        slots = [key_slot(partitions.hash_tag(partitions.name("q", i, count)).encode()) for i in range(count)]
        for i, slot in enumerate(slots):  # partition i's slot lies in the i-th of N equal bands
            assert i * REDIS_CLUSTER_HASH_SLOTS // count <= slot < (i + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    tags = {partitions.hash_tag(partitions.name("q", i, 50)) for i in range(50)}
    assert len(tags) == 50 and partitions.hash_tag("plain") == "plain"


@pytest.mark.parametrize(
    ("overrides", "wrong"),
    [
        ({"PARTITIONS": 0}, "PARTITIONS"),
        ({"PARTITIONS": 1025}, "PARTITIONS"),
        ({"PARTITIONS": "8"}, "PARTITIONS"),
        ({"PARTITIONS": True}, "PARTITIONS"),
        ({"PARTITIONS": 4, "RATE_LIMIT": "10/s"}, "RATE_LIMIT"),
    ],
)
def test_partitions_setting_is_validated(overrides, wrong):
    problems = validate({"QUEUES": {"emails": overrides}})
    assert [p.check_id for p in problems] == ["tempotask.E005"]
    assert wrong in problems[0].message
    assert validate({"QUEUES": {"emails": {"PARTITIONS": 1024}}}) == []


def test_an_id_always_lands_in_the_same_partition_so_dedup_stays_exact(emails):
    first = tasks.add.enqueue({"a": 1, "b": 1}, job_id="mail-1", queue="emails")
    again = api.add_jobs([{"name": "add", "data": {"a": 2, "b": 2}, "job_id": "mail-1", "queue": "emails"}])
    assert first == again[0] == "mail-1"
    expected = partitions.name("emails", partitions.index_for("mail-1", N), N)
    job = get_job("mail-1", queue="emails")
    assert (job.queue, job.data) == (expected, {"a": 1, "b": 1})  # the second enqueue was deduplicated
    assert sum(per_partition(emails)) == 1
    assert emails.inspect.count_jobs("emails", "waiting") == 1


def test_jobs_without_an_id_spread_evenly(emails):
    api.add_jobs([{"name": "add", "data": {"a": i, "b": 0}, "queue": "emails"} for i in range(1600)])
    counts = per_partition(emails)
    assert sum(counts) == 1600
    assert all(140 <= count <= 260 for count in counts), counts  # 200 each; 4 standard deviations is 56
    stats = api.queue_stats("emails")
    assert stats.waiting == 1600 and [part.waiting for part in stats.partitions] == counts


def test_a_worker_serving_the_queue_drains_every_partition(emails):
    ids = api.add_jobs([{"name": "add", "data": {"a": i, "b": 1}, "queue": "emails"} for i in range(80)])
    drain(["emails"])
    assert per_partition(emails, "completed") == per_partition(emails, "completed")
    assert sum(per_partition(emails, "completed")) == 80
    assert all(get_job(job_id, queue="emails").status == JobStatus.COMPLETED for job_id in ids)


def test_no_partition_waits_while_another_has_work(emails):
    """Partition 0 holds 60 jobs, every other one a single job: a worker running one job at a time
    starts each single job within the first 2N jobs, not after partition 0's backlog."""
    for job_id in ids_in(0, N, 60, "busy"):
        tasks.add.enqueue({"a": 1, "b": 1}, job_id=job_id, queue="emails")
    singles = [ids_in(i, N, 1, "one")[0] for i in range(1, N)]
    for job_id in singles:
        tasks.add.enqueue({"a": 1, "b": 1}, job_id=job_id, queue="emails")
    worker = Worker(["emails"], concurrency=1, max_jobs=2 * N)
    worker.run()
    assert worker.jobs_done == 2 * N
    assert [get_job(job_id, queue="emails").status for job_id in singles] == [JobStatus.COMPLETED] * (N - 1)
    assert emails.inspect.count_jobs("emails", "waiting") == 60 + N - 1 - 2 * N


def test_api_finds_cancels_retries_and_deletes_by_id_in_its_partition(emails):
    tasks.add.enqueue({"a": 1, "b": 2}, job_id="later", queue="emails", delay=3600)
    tasks.always_fails.enqueue({"why": "test"}, job_id="broken", queue="emails")
    drain(["emails"])
    assert get_job("later").status == JobStatus.DELAYED  # found without queue= too
    assert api.lookup_order().count("emails") == 1 and not any("~" in q for q in api.all_queues())
    assert cancel_job("later", queue="emails") == JobStatus.DELAYED
    assert get_job("later", queue="emails").status == JobStatus.CANCELLED
    assert retry_job("broken", queue="emails") == JobStatus.FAILED
    assert get_job("broken", queue="emails").status == JobStatus.WAITING
    assert delete_job("broken") == JobStatus.WAITING
    assert get_job("broken", queue="emails") is None
    physical = get_job("later", queue="emails").queue
    assert get_job("later", queue=physical).id == "later"  # the partition itself names it too


def test_pause_and_resume_apply_to_every_partition(emails):
    emails.pause_queue("emails")
    assert api.queue_stats("emails").paused and all(part.paused for part in api.queue_stats("emails").partitions)
    emails.resume_queue("emails")
    assert not any(part.paused for part in api.queue_stats("emails").partitions)


def test_a_task_with_limits_is_refused_in_a_partitioned_queue(emails):
    with pytest.raises(ConfigurationError, match="partitioned"):
        tasks.capped.enqueue({}, queue="emails")


def test_admin_queue_page_shows_the_queue_once_with_a_breakdown(emails, admin_client):
    api.add_jobs([{"name": "add", "data": {"a": i, "b": 0}, "queue": "emails"} for i in range(40)], on_commit=False)
    page = admin_client.get(reverse("admin:tempotask_job_list", args=["emails", "waiting"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "split into 8 partitions" in html
    for i, count in enumerate(per_partition(emails)):
        assert f'<th scope="row">emails~{i}of8</th><td class="num">{count}</td>' in html
    assert sum(per_partition(emails)) == 40
    assert html.count('href="/admin/tempotask_django/dashboard/queues/emails~') == 40  # the page lists every job
    job = api.list_jobs("emails", limit=1)[0]
    detail = admin_client.get(reverse("admin:tempotask_job", args=[job.queue, job.id]))
    assert detail.status_code == 200
    assert "(8 partitions)" in admin_client.get(reverse("admin:tempotask_overview")).content.decode()
    overview = admin_client.get(reverse("admin:tempotask_overview_data")).json()
    assert [row["waiting"] for row in overview["queues"] if row["queue"] == "emails"] == [40]
    assert not [row for row in overview["queues"] if "~" in row["queue"]]


def test_changing_n_is_refused_while_the_old_partitions_hold_active_jobs(emails, settings):
    tasks.add.enqueue({"a": 1, "b": 1}, job_id="old", queue="emails")
    assert emails.partition_counts.recorded("emails") == N
    call_command("check")  # N as recorded: fine
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": 4}}}
    reset_default_store()
    with pytest.raises(SystemCheckError, match=r"tempotask.E015.*Keep PARTITIONS = 8|Keep PARTITIONS = 8"):
        call_command("check")
    with pytest.raises(PartitionCountChanged, match="1 active job"):
        Worker(["emails"]).run()
    with pytest.raises(CommandError, match="Keep PARTITIONS = 8"):  # before any process is forked
        call_command("runworkers", "--queues", "emails", "--processes", "2")
    with pytest.raises(PartitionCountChanged):
        tasks.add.enqueue({"a": 1, "b": 1}, queue="emails")
    # Drained with the old N, the new one is taken.
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": N}}}
    reset_default_store()
    drain(["emails"])
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": 4}}}
    reset_default_store()
    call_command("check")
    job_id = tasks.add.enqueue({"a": 1, "b": 1}, queue="emails")
    assert get_job(job_id, queue="emails").queue.endswith("of4")
    from tempotask_django.storage.connection import get_default_store

    assert get_default_store().partition_counts.recorded("emails") == 4
    assert get_settings().for_queue("emails").partitions == 4


def test_partitioning_a_queue_that_holds_active_jobs_is_refused(store, settings):
    tasks.add.enqueue({"a": 1, "b": 1}, queue="emails")
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": 2}}}
    reset_default_store()
    with pytest.raises(PartitionCountChanged, match="Keep PARTITIONS = 1"):
        Worker(["emails"]).run()


def test_a_cron_schedule_fires_into_one_partition_and_its_jobs_run(emails, settings):
    from tempotask_django import run_cron_now
    from tempotask_django.cron import CronBeat, collect_schedules

    crons = {"digest": {"task": "record", "cron": "*/5 * * * *", "data": {"n": 1}, "queue": "emails"}}
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRONS": crons}
    schedule = next(s for s in collect_schedules() if s.name == "digest")
    assert schedule.queue == partitions.name("emails", partitions.index_for("digest", N), N)
    CronBeat([schedule]).sync()
    job_id = run_cron_now("digest")
    assert get_job(job_id, queue="emails").queue == schedule.queue  # found though its id maps elsewhere
    drain(["emails"])
    assert get_job(job_id, queue="emails").status == JobStatus.COMPLETED


def test_an_idle_worker_wakes_at_once_for_a_job_in_any_partition(emails):
    """The worker blocks on the doorbells of all eight partitions in one read: a job in any of them
    starts within milliseconds, not after a poll of the others."""
    import threading
    import time

    worker = Worker(["emails"], concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    latencies = []
    try:
        for index in range(N):
            time.sleep(0.15)  # the worker is blocked again
            job_id = ids_in(index, N, 1, "wake")[0]
            tasks.noop.enqueue(job_id=job_id, queue="emails")
            wait_until(lambda: get_job(job_id, queue="emails").status == JobStatus.COMPLETED, 10, 0.005)  # noqa: B023
            job = get_job(job_id, queue="emails")
            latencies.append((job.started_at - job.enqueued_at).total_seconds())
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert max(latencies) < 0.25, latencies
    assert sorted(latencies)[N // 2] < 0.05, latencies


def test_immediate_mode_runs_a_partitioned_queue_s_jobs(settings, redis_client):
    from tempotask_django.testing import immediate_mode

    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": 4}}}
    with immediate_mode():
        job_id = tasks.add.enqueue({"a": 2, "b": 3}, job_id="now", queue="emails")
        job = get_job(job_id, queue="emails")
        assert (job.status, job.result, job.queue) == (
            JobStatus.COMPLETED,
            5,
            partitions.for_id(get_settings(), "emails", "now"),
        )


def test_a_worker_whose_queue_is_at_its_limit_does_not_spin_on_the_doorbells(settings, redis_client):
    """CONCURRENCY 1 for the queue, 4 for the worker: while one job runs, the others wait in other
    partitions whose doorbells rang since the worker last claimed from them. The worker waits for
    its slot instead of reading those doorbells over and over."""
    import threading
    import time

    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"emails": {"PARTITIONS": N, "CONCURRENCY": 1}}}
    reset_default_store()
    first = tasks.naps.enqueue({"seconds": 1.5}, job_id=ids_in(0, N, 1, "nap")[0], queue="emails")
    worker = Worker(["emails"], concurrency=4)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: get_job(first, queue="emails").status == JobStatus.PROCESSING, 10, 0.01)
        for index in range(1, N):
            tasks.noop.enqueue(job_id=ids_in(index, N, 1, "after")[0], queue="emails")
        reads = xread_calls(redis_client)
        time.sleep(1)
        reads = xread_calls(redis_client) - reads
        wait_until(lambda: api.queue_stats("emails").completed == N, 15, 0.05)
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert reads <= 3, reads


def test_every_script_on_a_partitioned_queue_touches_only_declared_keys(emails, monkeypatch):
    from tests.storage.declared_keys import strict_scripts

    with strict_scripts(monkeypatch):
        reset_default_store()
        from tempotask_django.storage.connection import get_default_store

        store = get_default_store()
        api.add_jobs([{"name": "add", "data": {"a": i, "b": 1}, "queue": "emails"} for i in range(20)])
        tasks.always_fails.enqueue({"why": "test"}, job_id="broken", queue="emails")
        tasks.add.enqueue({"a": 1, "b": 1}, job_id="later", queue="emails", delay=3600)
        drain(["emails"], store=store)
        assert cancel_job("later", queue="emails") == JobStatus.DELAYED
        assert store.retry_failed("emails") == 1
        drain(["emails"], store=store)
        assert store.purge("emails", "failed") == 1
        assert delete_job("later", queue="emails") == JobStatus.CANCELLED
        stats = api.queue_stats("emails")
        assert (stats.completed, stats.failed, stats.cancelled) == (20, 0, 0)


@pytest.mark.djtasks
def test_the_django_tasks_backend_enqueues_into_a_partitioned_queue_and_reads_results(settings, redis_client):
    from tempotask_django.djtasks.compat import TaskResultStatus, default_task_backend
    from tests.testapp import dtasks

    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"other": {"PARTITIONS": 4}}}
    reset_default_store()
    results = [dtasks.echo.using(queue_name="other").enqueue(n) for n in range(12)]
    assert {get_job(result.id, queue="other").queue for result in results} <= set(
        partitions.expand(get_settings(), "other")
    )
    drain(["other"])
    for n, result in enumerate(results):
        fetched = default_task_backend.get_result(result.id)
        assert (fetched.status, fetched.return_value) == (TaskResultStatus.SUCCESSFUL, {"args": [n], "kwargs": {}})
        assert fetched.task.queue_name == "other"  # the queue, not the partition holding the job


def test_job_enqueued_names_the_queue_and_the_job_its_partition(emails):
    from tempotask_django import signals

    heard = []

    def receiver(sender, **kwargs):
        heard.append(kwargs["queue"])

    signals.job_enqueued.connect(receiver)
    try:
        job_id = tasks.add.enqueue({"a": 1, "b": 1}, queue="emails")
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert heard == ["emails"]
    assert partitions.logical(get_job(job_id, queue="emails").queue) == "emails"
