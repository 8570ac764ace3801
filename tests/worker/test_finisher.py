"""The finisher's batches: jobs that started moments ago are waited for a little and recorded together."""

from __future__ import annotations

import time

import pytest

from tempotask_django.worker import Worker, finisher
from tempotask_django.worker.running import RunningJob

pytestmark = pytest.mark.redis


@pytest.fixture
def batches(store, monkeypatch):
    """A worker whose finisher thread records nothing, only the size of each batch it takes."""
    worker = Worker(["default"], concurrency=8, app_context={})
    sizes: list[int] = []

    def record(batch):
        sizes.append(len(batch))
        for running, _ in batch:
            worker.running.remove(running)

    monkeypatch.setattr(worker.finisher, "record", record)
    yield worker, sizes
    worker.finisher.stop()


def started(worker: Worker, n: int, ago: float = 0.0) -> list[RunningJob]:
    jobs = [RunningJob("default", f"job{i}-{ago}", f"{i}-{int(ago)}", started=time.monotonic() - ago) for i in range(n)]
    for running in jobs:
        worker.running.add(running)
    return jobs


def test_jobs_that_started_together_are_recorded_in_one_batch(batches, monkeypatch):
    monkeypatch.setattr(finisher, "FINISH_GATHER", 5.0)  # a slow machine still gets them all
    monkeypatch.setattr(finisher, "FINISH_GATHER_GAP", 1.0)
    worker, sizes = batches
    jobs = started(worker, 4)
    worker.finisher.start()
    for running in jobs:
        worker.finisher.finished.put((running, None))
        time.sleep(0.01)
    deadline = time.monotonic() + 10
    while not sizes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sizes == [4]


def test_a_job_that_runs_long_is_not_waited_for(batches, monkeypatch):
    monkeypatch.setattr(finisher, "FINISH_GATHER", 5.0)
    monkeypatch.setattr(finisher, "FINISH_GATHER_GAP", 5.0)
    worker, sizes = batches
    started(worker, 1, ago=60.0)  # a long job still running
    (quick,) = started(worker, 1)
    worker.finisher.start()
    start = time.monotonic()
    worker.finisher.finished.put((quick, None))
    while not sizes and time.monotonic() < start + 10:
        time.sleep(0.005)
    assert sizes == [1] and time.monotonic() - start < 2.5


def test_the_wait_ends_after_finish_gather(batches, monkeypatch):
    monkeypatch.setattr(finisher, "FINISH_GATHER", 0.2)
    monkeypatch.setattr(finisher, "FINISH_GATHER_GAP", 1.0)
    worker, sizes = batches
    first, _still_running = started(worker, 2)
    worker.finisher.start()
    start = time.monotonic()
    worker.finisher.finished.put((first, None))
    while not sizes and time.monotonic() < start + 10:
        time.sleep(0.005)
    assert sizes == [1] and 0.15 <= time.monotonic() - start < 5


def test_the_wait_ends_when_no_job_ends_for_finish_gather_gap(batches, monkeypatch):
    monkeypatch.setattr(finisher, "FINISH_GATHER", 5.0)
    monkeypatch.setattr(finisher, "FINISH_GATHER_GAP", 0.2)
    worker, sizes = batches
    first, second, _third = started(worker, 3)
    worker.finisher.start()
    start = time.monotonic()
    worker.finisher.finished.put((first, None))
    time.sleep(0.05)
    worker.finisher.finished.put((second, None))
    while not sizes and time.monotonic() < start + 10:
        time.sleep(0.005)
    assert sizes == [2] and 0.2 <= time.monotonic() - start < 2.5
