"""Slot accounting shared by the threads that claim jobs."""

from __future__ import annotations

import threading

from tempotask_django.worker.slots import Slots


def test_reservations_never_exceed_concurrency_or_a_queue_limit():
    slots = Slots(4, {"a": 3, "b": 4})
    assert slots.reserve("a", 10) == 3
    assert slots.reserve("b", 10) == 1
    assert slots.free() == 0 and slots.reserve("b", 1) == 0
    slots.settle("a", 3, 1)  # the claim got one job: two slots come back
    assert slots.free() == 2 and slots.free_in("a") == 2
    slots.finished("a")
    assert slots.free() == 3


def test_max_jobs_counts_started_and_reserved_jobs():
    slots = Slots(10, {"a": 10}, max_jobs=3)
    assert slots.reserve("a", 10) == 3
    slots.settle("a", 3, 2)
    slots.finished("a", 2)
    assert slots.started == 2 and slots.free() == 1


def test_concurrent_claimers_share_the_slots():
    slots = Slots(8, {"a": 8})
    got: list[int] = []

    def claimer():
        for _ in range(1000):
            n = slots.reserve("a", 3)
            got.append(n)
            slots.settle("a", n, n)
            slots.finished("a", n)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slots.free() == 8 and slots.started == sum(got)
