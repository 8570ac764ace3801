"""Sentinel mode on real servers (1 master, 1 replica, 3 sentinels started here): a worker, a cron
beat and a producer ride out a ``SENTINEL FAILOVER`` and then a SIGKILL of the master, without a
restart and without losing a job acknowledged after the sentinels named the new master."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tempotask_django import JobStatus, NotReplicated, get_job
from tempotask_django.cron import CronBeat
from tempotask_django.storage.connection import MASTER_CHECK_INTERVAL, get_default_store, reset_default_store
from tempotask_django.worker import Worker
from tests.cron.support import only_schedules
from tests.helpers import wait_until
from tests.sentinel_servers import MASTER_NAME, SentinelSetup
from tests.testapp import tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def sentinels(tmp_path, settings):
    with SentinelSetup(tmp_path) as setup:
        settings.TEMPOTASK = {
            **settings.TEMPOTASK,
            "REDIS_MODE": "sentinel",
            "SENTINELS": setup.sentinel_addresses,
            "SENTINEL_MASTER": MASTER_NAME,
            # Its host is not used: the sentinels name the master (port 1: a stray connection fails).
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "STALLED_TIMEOUT": 2,
            "MAX_JOBS_PER_STATUS": 100_000,
        }
        reset_default_store()
        yield setup
        reset_default_store()


class Producer:
    """Enqueues all the time; remembers each acknowledged job with the time its enqueue started."""

    def __init__(self) -> None:
        self.acked: list[tuple[float, str]] = []
        self.refused = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            started = time.monotonic()
            try:
                job_id = tasks.noop.enqueue({"n": n})
            except (redis.RedisError, NotReplicated):
                self.refused += 1  # not acknowledged: the caller knows
                time.sleep(0.05)
                continue
            self.acked.append((started, job_id))
            time.sleep(0.02)

    def since(self, moment: float) -> list[str]:
        return [job_id for started, job_id in self.acked if started >= moment]


def completed(job_id: str) -> bool:
    try:
        job = get_job(job_id)
    except redis.RedisError:
        return False
    return job is not None and job.status == JobStatus.COMPLETED


def tick_completed_after(moment: float) -> bool:
    """A tick of the every-second schedule later than the epoch second ``moment`` ran."""
    return any(completed(f"cron:every_second:{second}") for second in range(int(moment) + 1, int(time.time()) + 1))


def resumed_after(producer: Producer, moment: float, timeout: float = 40, grace: float = 0.0) -> float:
    """Seconds from ``moment`` until a job enqueued after it and a cron tick after it have run. Only
    jobs enqueued after ``grace`` count: the old master may have acknowledged, then lost, all of the
    first ones (the clients leave it within MASTER_CHECK_INTERVAL, while the producer enqueues every
    20 ms)."""
    wall = time.time() - (time.monotonic() - moment)
    first_counted = moment + grace
    wait_until(
        lambda: any(completed(j) for j in producer.since(first_counted)[:5]), timeout, 0.05, "a job to run again"
    )
    wait_until(lambda: tick_completed_after(wall), timeout, 0.1, "a cron tick to fire again")
    return time.monotonic() - moment


def test_every_client_reaches_the_master_the_sentinels_name(sentinels):
    store = get_default_store()
    store.direct.call("SET", "tempotask-test:direct", "1")  # the fast path's own connections
    store.client.set("tempotask-test:pooled", "1")  # redis-py's pool
    with sentinels.client_of(sentinels.master_port()) as master:
        assert master.mget("tempotask-test:direct", "tempotask-test:pooled") == ["1", "1"]
        assert master.info("replication")["role"] == "master"
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    assert get_job(job_id).status == JobStatus.WAITING


def test_a_master_refusing_writes_for_want_of_replicas_is_a_connection_error(sentinels):
    """NOREPLICAS (min-replicas-to-write): the old master just after a failover. The callers' retry
    and outage handling apply, as for a master that is down; the enqueue did not happen."""
    tasks.add.enqueue({"a": 1, "b": 2})  # connections open and scripts loaded
    sentinels.set_all("min-replicas-to-write", "2")  # one replica only: every write is refused
    with pytest.raises(redis.ConnectionError, match="NOREPLICAS"):
        tasks.add.enqueue({"a": 1, "b": 2}, job_id="refused")
    sentinels.set_all("min-replicas-to-write", "0")
    assert get_job("refused") is None
    assert get_job(tasks.add.enqueue({"a": 1, "b": 2}, job_id="accepted")).status == JobStatus.WAITING


def all_run(producer: Producer, since: float, until: float, what: str) -> None:
    """Every job whose enqueue started in [since, until) and was acknowledged runs."""
    jobs = [job_id for started, job_id in producer.acked if since <= started < until]
    assert len(jobs) >= 10, f"too few jobs acknowledged {what} to prove anything: {len(jobs)}"
    wait_until(lambda: all(completed(j) for j in jobs), 30, 0.2, f"every job acknowledged {what} to run")


def never_run(producer: Producer, since: float, until: float) -> list[str]:
    """Jobs acknowledged in [since, until) that do not run within 10 s (a job may run late: its
    completion was lost with the old master, and it is taken over once its lease expires)."""
    jobs = [job_id for started, job_id in producer.acked if since <= started < until]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(completed(j) for j in jobs):
        time.sleep(0.2)
    return [j for j in jobs if not completed(j)]


@pytest.mark.slow
@pytest.mark.parametrize(("min_replicas", "enqueue_replicas"), [(1, 0), (0, 0), (0, 1)])
def test_worker_beat_and_producer_follow_the_master_through_failover_and_kill(
    sentinels, settings, capsys, min_replicas, enqueue_replicas
):
    """With min-replicas-to-write 1 the old master refuses writes from the promotion on; without
    it, it accepts them for ~10 s more, and the clients leave it within MASTER_CHECK_INTERVAL of the
    sentinels naming the new master. With ENQUEUE_REPLICAS 1 an enqueue the old master's replica
    did not acknowledge raises: no acknowledged job is lost, after the failover or the kill."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": enqueue_replicas}
    reset_default_store()
    grace = 0.0 if min_replicas or enqueue_replicas else MASTER_CHECK_INTERVAL + 0.2
    worker = Worker(concurrency=2)
    beat = CronBeat(only_schedules(every_second={"task": "noop", "cron": "* * * * * *"}))
    producer = Producer()
    threads = [threading.Thread(target=worker.run), threading.Thread(target=beat.run), producer.thread]
    for thread in threads:
        thread.start()
    try:
        first = tasks.noop.enqueue({"n": 0})
        wait_until(lambda: completed(first), 15, message="the first job")
        resumed_after(producer, time.monotonic())  # jobs and ticks run before any failover

        # 1. SENTINEL FAILOVER. The old master stays a master for ~10 s.
        sentinels.set_all("min-replicas-to-write", str(min_replicas))
        old = sentinels.master_port()
        started = time.monotonic()
        new = sentinels.failover()
        switched = time.monotonic()
        assert new != old
        assert get_default_store().master_changes(ask=True) >= 1  # what the beat looks at
        failover_pause = resumed_after(producer, switched, grace=grace)
        wait_until(lambda: sentinels.role(old) == "slave", 30, 0.1, "the old master to follow the new one")
        before_kill = time.monotonic()
        if not enqueue_replicas:  # else few are acknowledged: the new master has no replica for ~10 s
            all_run(producer, switched + grace, before_kill, "after the failover")
        lost_in_grace = [
            j for started, j in producer.acked if switched <= started < switched + grace and not completed(j)
        ]

        # 2. SIGKILL of the master, as a crash. With one replica left, the survivor must write alone.
        sentinels.set_all("min-replicas-to-write", "0")
        killed = time.monotonic()
        sentinels.server_on(new).kill()
        assert sentinels.wait_for_new_master(new) == old
        assert get_default_store().master_changes(ask=True) >= 2
        switched_again = time.monotonic()
        if enqueue_replicas:  # the survivor has no replica: every enqueue raises NotReplicated (and runs)
            wall = time.time()
            wait_until(lambda: tick_completed_after(wall - (time.monotonic() - killed)), 40, 0.1, "a tick")
            kill_pause = time.monotonic() - killed
        else:
            kill_pause = resumed_after(producer, killed)
        time.sleep(1)
        producer.stopping.set()
        producer.thread.join(timeout=10)
        if not enqueue_replicas:
            all_run(producer, switched_again, time.monotonic(), "after the kill")

        assert all(thread.is_alive() for thread in threads[:2]) and worker.finisher.is_alive()  # never restarted
        # Async replication: a job acknowledged by the killed master just before the kill may be gone.
        lost = never_run(producer, before_kill, switched_again)
        lost_in_grace = never_run(producer, switched, switched + (grace or MASTER_CHECK_INTERVAL + 0.2))
        with capsys.disabled():
            print(
                f"\nsentinel, min-replicas-to-write {min_replicas}, ENQUEUE_REPLICAS {enqueue_replicas}: "
                f"SENTINEL FAILOVER: new master named after {switched - started:.1f}s, jobs and "
                f"ticks ran again {failover_pause:.1f}s later; SIGKILL: new master named after "
                f"{switched_again - killed:.1f}s, jobs and ticks ran again {kill_pause:.1f}s after the kill; "
                f"{len(producer.acked)} jobs acknowledged, {producer.refused} enqueues refused (an error to the "
                f"caller), {len(lost_in_grace)} acknowledged in the {grace or MASTER_CHECK_INTERVAL + 0.2:.1f}s after "
                f"the failover and lost, "
                f"{len(lost)} acknowledged just before the kill and lost"
            )
        if enqueue_replicas:
            assert (lost_in_grace, lost) == ([], [])
    finally:
        producer.stopping.set()
        worker.request_stop()
        beat.request_stop()
        for thread in threads:
            thread.join(timeout=15)


def test_enqueue_replicas_waits_for_the_replica_of_the_master(sentinels, settings):
    from tempotask_django import NotReplicated

    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": 1}
    reset_default_store()
    single = tasks.noop.enqueue(job_id="one")
    bulk = tasks.noop.enqueue_many([{"n": n} for n in range(5)])
    replica = next(server.port for server in sentinels.servers if server.port != sentinels.master_port())
    with sentinels.client_of(replica) as client:
        store = get_default_store()
        assert all(client.exists(store.keys("default").job(job_id)) for job_id in [single, *bulk])
    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": 2, "ENQUEUE_REPLICAS_TIMEOUT": 0.1}
    reset_default_store()
    with pytest.raises(NotReplicated, match="only 1 of the 2 replicas"):
        tasks.noop.enqueue()
