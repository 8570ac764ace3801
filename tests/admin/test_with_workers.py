"""The dashboard with real ``runworkers`` processes: the workers page, and pausing a queue they serve."""

from __future__ import annotations

import signal
import socket
import time

import pytest
from django.urls import reverse

from tempotask_django import JobStatus, get_job
from tests.admin.conftest import client_for
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db, pytest.mark.redis, pytest.mark.slow]


def listed_workers(client) -> list[dict]:
    return client.get(reverse("admin:tempotask_workers")).context["workers"]


def test_a_real_worker_is_listed_with_its_numbers_and_leaves_after_sigkill_and_its_ttl(workers, ledger, superuser):
    # STALLED_TIMEOUT 1: a heartbeat every 1/3 s, valid 3 s (the shortest heartbeat TTL).
    process = workers.start(
        "--queues", "default", "slow", "--concurrency", "3", "--prefetch", "2", overrides={"STALLED_TIMEOUT": 1}
    )
    for n in range(2):
        tasks.add.enqueue({"a": n, "b": 1}, on_commit=False)
    tasks.slow.enqueue({"seconds": 60}, on_commit=False)  # still running when the worker is killed
    client = client_for(superuser)

    def shows_the_work():
        rows = listed_workers(client)
        return rows if rows and rows[0]["jobs_done"] == 2 and rows[0]["running"] == 1 else None

    [row] = wait_until(shows_the_work, timeout=30, message="the worker's heartbeat to count its jobs")
    assert (row["host"], row["pid"], row["queues"], row["concurrency"]) == (
        socket.gethostname(),
        str(process.pid),
        ["default", "slow"],
        3,
    )
    assert row["prefetch"] == 2
    html = client.get(reverse("admin:tempotask_workers")).content.decode()
    cells = (
        f"<td>{socket.gethostname()}</td>",
        f'<td class="num">{process.pid}</td>',
        '<td class="num">3 <span class="help">+ 2 prefetch</span></td>',
        '<td class="num">2</td><td class="num">1</td>',
    )
    for cell in cells:
        assert cell in html, cell
    assert ">default</a>, <a" in html and ">slow</a>" in html

    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    killed = time.monotonic()
    assert [w["pid"] for w in listed_workers(client)] == [str(process.pid)]  # nobody withdrew it: it waits for its TTL
    wait_until(lambda: listed_workers(client) == [], timeout=15, message="the dead worker to disappear")
    assert time.monotonic() - killed < 10
    assert "No live worker" in client.get(reverse("admin:tempotask_workers")).content.decode()


def test_a_paused_queue_lets_its_running_job_finish_and_starts_nothing_until_resumed(workers, ledger, superuser):
    client = client_for(superuser)
    running = tasks.slow.enqueue({"seconds": 1.5}, on_commit=False)
    workers.start("--queues", "slow", "--concurrency", "2")  # a free slot all along
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the first job to start")
    assert client.post(reverse("admin:tempotask_queue_pause", args=["slow"])).status_code == 302
    held = tasks.slow.enqueue(
        {"seconds": 0}, on_commit=False
    )  # rings the doorbell: the worker wakes and finds the queue paused
    wait_until(lambda: get_job(running).status == JobStatus.COMPLETED, timeout=20, message="the running job")
    time.sleep(2.5)  # longer than an idle worker's longest block: it has looked at the queue since
    assert get_job(held).status == JobStatus.WAITING
    assert [entry["job"] for entry in ledger.entries("start")] == [running]
    assert client.post(reverse("admin:tempotask_queue_resume", args=["slow"])).status_code == 302
    wait_until(lambda: get_job(held).status == JobStatus.COMPLETED, timeout=20, message="the held job after resume")
    assert [entry["job"] for entry in ledger.entries("start")] == [running, held]
