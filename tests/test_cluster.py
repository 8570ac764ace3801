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


def test_the_cli_reports_and_acts_on_queues_of_every_master(cluster, capsys):
    import json

    from django.core.management import call_command

    for queue in QUEUES:
        tasks.noop.enqueue_many([{}] * 2, queue=queue)
    call_command("tempotask", "stats", "--json")
    stats = json.loads(capsys.readouterr().out)
    text = json.dumps(stats)
    assert all(f'"{queue}"' in text for queue in QUEUES)
    call_command("tempotask", "pause", "b")
    assert get_default_store().inspect.queue_stats("b").paused
    call_command("tempotask", "resume", "b")  # a MULTI on the queue's own slot
    assert not get_default_store().inspect.queue_stats("b").paused
    job_id = tasks.noop.enqueue(queue="c")
    call_command("tempotask", "cancel", job_id)
    assert get_job(job_id).status == JobStatus.CANCELLED


@pytest.mark.djtasks
def test_the_django_tasks_backend_enqueues_and_reads_results(cluster):
    from tests.testapp import dtasks

    result = dtasks.noop.enqueue(1, two=2)
    assert get_job(result.id).status == JobStatus.WAITING
    workers = Workers(["default"])
    try:
        wait_until(lambda: dtasks.noop.get_result(result.id).is_finished, 10, 0.05)
    finally:
        workers.stop()
    assert dtasks.noop.get_result(result.id).status.name == "SUCCESSFUL"


def test_immediate_mode_ignores_the_cluster(cluster):
    from tempotask_django.testing import immediate_mode

    with immediate_mode():
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        assert get_job(job_id).status == JobStatus.COMPLETED


def test_enqueue_replicas_waits_for_the_replica_of_each_master(cluster, settings):
    from tempotask_django import NotReplicated

    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": 1}
    reset_default_store()
    single = [tasks.noop.enqueue(queue=queue) for queue in QUEUES]
    bulk = tasks.noop.enqueue_many([{"n": n} for n in range(5)], queue="a")
    for queue in QUEUES:  # every replica holds the job once enqueue returned
        for job_id in single + bulk:
            key = get_default_store().keys(queue).job(job_id)
            master = cluster.port_of_key(key)
            with cluster.client_of(cluster.replica_of(master)) as replica:
                replica.execute_command("READONLY")
                if get_job(job_id, queue) is not None:
                    assert replica.exists(key)
    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": 2, "ENQUEUE_REPLICAS_TIMEOUT": 0.1}
    reset_default_store()
    with pytest.raises(NotReplicated, match="only 1 of the 2 replicas"):
        tasks.noop.enqueue_many([{}] * 3, queue="b")


class Producer:
    """Enqueues all the time, round-robin over QUEUES, with its own job ids: remembers when each
    enqueue started and whether it was acknowledged (returned without an error)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, str, bool]] = []  # (started, queue, job id, acknowledged)
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            queue, job_id, started = QUEUES[n % len(QUEUES)], f"p{n}", time.monotonic()
            try:
                tasks.noop.enqueue({"n": n}, queue=queue, job_id=job_id)
            except Exception as exc:
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                self.sent.append((started, queue, job_id, False))
                time.sleep(0.05)
                continue
            self.sent.append((started, queue, job_id, True))
            time.sleep(0.01)

    def acked(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[str, str]]:
        return [(queue, job_id) for started, queue, job_id, ok in self.sent if ok and since <= started < until]


def completed_job(queue: str, job_id: str) -> bool:
    try:
        job = get_job(job_id, queue)
    except Exception:
        return False
    return job is not None and job.status == JobStatus.COMPLETED


def resumed(producer: Producer, queue: str, moment: float, timeout: float = 40) -> float:
    """Seconds from ``moment`` until a job of ``queue`` whose enqueue started after it has run."""

    def one_ran() -> bool:
        return any(completed_job(q, j) for started, q, j, _ in list(producer.sent) if q == queue and started >= moment)

    wait_until(one_ran, timeout, 0.02, f"a job of {queue} to run again")
    return time.monotonic() - moment


def lost(producer: Producer, since: float = 0.0, until: float = float("inf")) -> list[str]:
    """Acknowledged jobs that do not run within 15 s."""
    jobs = producer.acked(since, until)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(completed_job(q, j) for q, j in jobs):
        time.sleep(0.2)
    return [j for q, j in jobs if not completed_job(q, j)]


@pytest.mark.slow
@pytest.mark.parametrize("enqueue_replicas", [0, 1])
def test_workers_beats_and_producers_carry_on_through_a_failover_and_a_master_killed(
    cluster, settings, capsys, enqueue_replicas
):
    """``CLUSTER FAILOVER`` on the replica of queue a's master, then SIGKILL of queue b's master: the
    workers, the beat and the producer carry on without a restart. With ENQUEUE_REPLICAS 1 no job
    acknowledged is lost; with 0, jobs acknowledged just before the kill may be."""
    from tempotask_django.cron import CronBeat
    from tempotask_django.storage.crons import CronStore
    from tests.cron.support import only_schedules

    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": enqueue_replicas}
    reset_default_store()
    beat = CronBeat(only_schedules(every_second={"task": "noop", "cron": "* * * * * *", "queue": "c"}))
    workers = Workers(QUEUES, QUEUES, concurrency=2)
    producer = Producer()
    threads = [threading.Thread(target=beat.run), producer.thread]
    for thread in threads:
        thread.start()
    killed_port = None
    try:
        for queue in QUEUES:
            resumed(producer, queue, time.monotonic())
        # The first tick owed is the first one later than the schedule's registration.
        crons = CronStore(get_default_store())
        wait_until(lambda: (crons.get("every_second") or {}).get("since"), 10, 0.02, "the schedule's registration")
        first_tick = int(crons.get("every_second")["since"]) // 1000 + 1

        started = time.monotonic()
        cluster.failover(cluster.port_of_key("{a}"))
        switched = time.monotonic()
        failover_pause = resumed(producer, "a", started)

        killed_port = cluster.port_of_key("{b}")
        killed = time.monotonic()
        cluster.kill_master(killed_port)
        promoted = time.monotonic()
        kill_pause = resumed(producer, "b", killed)
        time.sleep(3)
        producer.stopping.set()
        producer.thread.join(timeout=10)
        last_tick = int(time.time()) - 2

        lost_jobs = lost(producer)
        ticks = [f"cron:every_second:{second}" for second in range(first_tick, last_tick)]
        missing_ticks = [tick for tick in ticks if not completed_job("c", tick)]
        assert all(worker.finisher.is_alive() for worker in workers.workers)  # never restarted
        with capsys.disabled():
            print(
                f"\ncluster, ENQUEUE_REPLICAS {enqueue_replicas}: CLUSTER FAILOVER took {switched - started:.1f}s, "
                f"queue a ran jobs again {failover_pause:.1f}s after it began; SIGKILL of a master: replica "
                f"promoted after {promoted - killed:.1f}s, queue b ran jobs again {kill_pause:.1f}s after the "
                f"kill; {len(producer.acked())} jobs acknowledged, {sum(producer.errors.values())} enqueues "
                f"raised {producer.errors}, {len(lost_jobs)} acknowledged and lost; {len(ticks)} cron ticks, "
                f"{len(missing_ticks)} not fired"
            )
        # The ticks that came while the beat's clock read or heartbeat waited on the killed node are
        # owed, and fired once it answers (tick jobs on a killed master not yet replicated aside).
        assert missing_ticks == []
        if enqueue_replicas:
            assert lost_jobs == []
        for started_at, queue, job_id, ok in producer.sent:
            if not ok and started_at > promoted + 1 and queue != "b":
                pytest.fail(f"enqueue of {job_id} to {queue} failed after the cluster was ok again")
    finally:
        producer.stopping.set()
        beat.request_stop()
        workers.stop()
        for thread in threads:
            thread.join(timeout=15)
        if killed_port is not None:  # back as a replica: the next test has a whole cluster again
            cluster.server_on(killed_port).start()
            cluster.wait_ready()


def test_every_script_runs_on_the_cluster_with_queues_on_every_master(ledger, cluster, monkeypatch):
    """A script touching a key outside its queue's slot fails on a cluster ("non local key", or
    CROSSSLOT): each one runs here, for queues on three masters, through the calls that use it."""
    from tempotask_django import cancel_job, delete_job, retry_job
    from tempotask_django.cron import CronBeat, add_cron, delete_cron, pause_cron, run_cron_now, update_cron
    from tempotask_django.storage.scripts import SCRIPT_NAMES
    from tests.cron.support import only_schedules

    store = get_default_store()
    ran: set[str] = set()
    command = store.scripts.command

    def recording(script, queue, args, keys=()):
        ran.add(script)
        return command(script, queue, args, keys)

    monkeypatch.setattr(store.scripts, "command", recording)
    failed = {}
    for queue in QUEUES:
        tasks.echoes.enqueue({"text": "hi"}, queue=queue)
        tasks.reports_progress.enqueue(queue=queue)
        tasks.rated.enqueue(queue=queue)
        tasks.one_per_tenant.enqueue({"tenant": "t"}, queue=queue)
        failed[queue] = tasks.always_fails.enqueue({"why": "test"}, queue=queue, attempts=1)
        assert cancel_job(tasks.noop.enqueue(queue=queue, delay=60)) == JobStatus.DELAYED
    Worker(QUEUES, concurrency=2, burst=True).run()
    for queue in QUEUES:
        assert get_job(failed[queue], queue).status == JobStatus.FAILED
        assert retry_job(failed[queue], queue) == JobStatus.FAILED
    Worker(QUEUES, burst=True).run()
    for queue in QUEUES:
        assert store.retry_failed(queue) == 1
        assert delete_job(failed[queue], queue) == JobStatus.WAITING
        assert store.purge(queue, "completed") >= 4
        claimed = store.claim(queue, "by-hand", 1)
        if not claimed.jobs:
            tasks.noop.enqueue(queue=queue)
            claimed = store.claim(queue, "by-hand", 1)
        entry, job_id = claimed.jobs[0]["entry"], claimed.jobs[0]["id"]
        assert store.renew(queue, "by-hand", [entry]) == []
        assert store.give_back("by-hand", [(queue, entry, job_id)]) == 1
        store.reclaim(queue, "by-hand", 10)
        store.sweep_lost_entries(queue)
        store.forget_consumers(queue, 0)
        beat = CronBeat(only_schedules(**{f"code-{queue}": {"task": "noop", "cron": "0 3 * * *", "queue": queue}}))
        beat.sync()
        beat.tick()
        add_cron(f"runtime-{queue}", "noop", "* * * * *", queue=queue)
        update_cron(f"runtime-{queue}", cron="*/5 * * * *")
        pause_cron(f"runtime-{queue}")
        run_cron_now(f"code-{queue}")
        delete_cron(f"runtime-{queue}")
    assert {stats.queue for stats in store.inspect.queue_stats_many(QUEUES)} == set(QUEUES)
    assert ran == set(SCRIPT_NAMES)


@pytest.mark.slow
def test_runworkers_processes_with_cron_serve_queues_on_every_master(cluster, workers):
    """``manage.py runworkers --processes 2 --with-cron``: forked worker processes and the beat on the cluster."""
    overrides = {"REDIS_MODE": "cluster", "STALLED_TIMEOUT": 2, "CONTEXT": "tests.test_cluster.ledger_context"}
    overrides["CRONS"] = {"every_second": {"task": "noop", "cron": "* * * * * *", "queue": "c"}}
    process = workers.start("--queues", *QUEUES, "--processes", "2", "--with-cron", overrides=overrides)
    jobs = [(queue, tasks.noop.enqueue(queue=queue)) for queue in QUEUES * 5]
    try:
        wait_until(lambda: all(completed_job(q, j) for q, j in jobs), 30, 0.1, "the jobs to run")
        second = int(time.time())
        wait_until(lambda: completed_job("c", f"cron:every_second:{second + 1}"), 15, 0.1, "a tick to run")
    finally:
        assert process.poll() is None, workers.output(process)


def test_a_blocking_read_left_unanswered_by_a_silent_node_is_sent_again(cluster):
    """A node gone without closing the connection never answers a blocking read: past its BLOCK time
    and a grace, the wait reads again on a new connection instead of missing every wake-up."""
    from tempotask_django.storage import cluster as cluster_module

    store = get_default_store()
    key = store.keys("a").wake
    assert store.waits.wait({key: "0-0"}, 10) is False  # a read is now in flight
    (read,) = store.waits._reads().values()
    read.connection.disconnect()
    read.connection.connect()  # a connection on which no reply will ever come, as from a silent node
    read.due -= cluster_module.STALE_READ_GRACE + 1
    tasks.noop.enqueue(queue="a")
    started = time.monotonic()
    assert store.waits.wait({key: "0-0"}, 3000) is True
    assert time.monotonic() - started < 1


def test_a_slot_no_node_serves_is_an_outage_for_the_caller(cluster, monkeypatch):
    """A slot map read while a master was down may leave slots uncovered: callers get the
    ConnectionError of any outage (workers back off and retry), not an unexpected exception."""
    import redis
    from redis.exceptions import SlotNotCoveredError

    store = get_default_store()

    def uncovered(*args, **kwargs):
        raise SlotNotCoveredError('Slot "1" not covered by the cluster.')

    monkeypatch.setattr(store.client.nodes_manager, "get_node_from_slot", uncovered)
    monkeypatch.setattr(store.direct, "refresh", lambda: None)
    with pytest.raises(redis.ConnectionError, match="no node serves slot"):
        store.claim("a", "by-hand", 1)
    with pytest.raises(redis.ConnectionError, match="no node serves slot"):
        store.wait_for_jobs({"a": "0-0"}, 10)
    from tempotask_django.storage.outage import REDIS_ERRORS

    assert isinstance(SlotNotCoveredError("x"), REDIS_ERRORS)  # raised by redis-py's own client too


def test_a_closed_store_reconnects_and_an_unreachable_cluster_is_an_outage(cluster, settings):
    import redis

    from tempotask_django.conf import build_settings
    from tempotask_django.storage.connection import make_client

    store = get_default_store()
    job_id = tasks.noop.enqueue(queue="b")
    reset_default_store()  # closes it (settings changed, a fork): a caller still holding it goes on
    assert store.inspect.get_job("b", job_id).status == JobStatus.WAITING
    assert store.server_time_ms() > 0
    with pytest.raises(redis.ConnectionError, match="cannot be reached"):
        make_client(build_settings({"REDIS_MODE": "cluster", "REDIS_URL": "redis://:pw@127.0.0.1:1/0"}))


def test_a_partitioned_queue_spreads_over_every_master_and_drains_without_polling(cluster, settings):
    """QUEUES PARTITIONS: six partitions of one queue land two on each master (their hash tags sit in
    six equal bands of the slots); one worker serving the queue drains them all, woken by any of them."""
    from collections import Counter

    from tempotask_django import partitions
    from tempotask_django.conf import get_settings

    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"hot": {"PARTITIONS": 6}}}
    reset_default_store()
    store = get_default_store()
    names = partitions.expand(get_settings(), "hot")
    by_master = Counter(cluster.port_of_key(store.keys(name).waiting) for name in names)
    assert sorted(by_master.values()) == [2, 2, 2], by_master
    ids = tasks.noop.enqueue_many([{"n": n} for n in range(300)], queue="hot")
    assert tasks.noop.enqueue({"n": 0}, job_id="once", queue="hot") == tasks.noop.enqueue(job_id="once", queue="hot")
    jobs_per_master = Counter()
    for name in names:
        jobs_per_master[cluster.port_of_key(store.keys(name).waiting)] += store.inspect.count_jobs(name, "waiting")
    assert sum(jobs_per_master.values()) == 301 and min(jobs_per_master.values()) >= 60, jobs_per_master
    workers = Workers(["hot"], concurrency=4)
    try:
        wait_until(lambda: store.inspect.count_jobs("hot", "completed") == 301, 30, 0.1)
        late = tasks.noop.enqueue(queue="hot")  # the worker is idle, blocked on the six doorbells
        wait_until(lambda: get_job(late, queue="hot").status == JobStatus.COMPLETED, 10, 0.01)
    finally:
        workers.stop()
    assert all(get_job(job_id, queue="hot").status == JobStatus.COMPLETED for job_id in ids)
