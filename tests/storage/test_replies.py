"""RequestIds: which reply key a script call gets (no Redis needed)."""

from __future__ import annotations

from tempotask_django.storage import replies
from tempotask_django.storage.replies import FORGET_AFTER, RequestIds

BASE = "P:{q}:"


def key(ids: RequestIds, script: str = "claim", args: tuple = ("workers", "w1", 4, 100)) -> str:
    return ids.key_for(script, "q", BASE, args, ())


def test_every_call_gets_a_key_of_its_own_under_the_queue():
    ids = RequestIds()
    first, second = key(ids), key(ids)
    assert first != second
    assert first.startswith(f"{BASE}reply:") and second.startswith(f"{BASE}reply:")


def test_the_same_call_repeated_after_an_error_gets_the_same_key_once(monkeypatch):
    monkeypatch.setattr(replies, "FORGET_AGE", 3600.0)
    ids = RequestIds()
    failed = key(ids)
    ids.unanswered([failed])
    assert key(ids, args=("workers", "w1", 3, 100)) != failed  # another call
    repeat = key(ids)
    assert repeat == failed
    assert key(ids) != failed  # a second thread repeating it meanwhile does not get the batch too
    ids.unanswered([repeat])
    assert key(ids) == failed  # the repeat raised too: the next one gets it
    ids.answered([failed])
    assert key(ids) != failed
    assert ids.forget_commands() == []  # one answered call: kept until FORGET_AFTER pile up
    others = [key(ids) for _ in range(FORGET_AFTER - 1)]
    ids.answered(others)
    assert [command[1:] for command in ids.forget_commands()] == [(failed, *others)]
    assert ids.forget_commands() == []


def test_a_leasing_call_is_repeated_with_its_key_only_within_the_lease_window():
    ids = RequestIds(lease_window=0)
    failed = key(ids)
    ids.unanswered([failed])
    assert key(ids) != failed
    log = key(ids, "log", ("id", "line", 100))
    ids.unanswered([log])
    assert key(ids, "log", ("id", "line", 100)) == log  # not a lease: REPEAT_WINDOW applies


def test_a_claim_repeated_with_more_room_gets_the_batch_and_with_less_does_not():
    ids = RequestIds()
    failed = key(ids, args=("workers", "w1", 4, 100))
    ids.unanswered([failed])
    assert key(ids, args=("workers", "w1", 2, 100)) != failed  # the batch may not fit: kept for later
    assert key(ids, args=("workers", "w2", 8, 100)) != failed  # another worker
    assert key(ids, args=("workers", "w1", 8, 100)) == failed


def test_a_stopping_process_forgets_every_stored_reply_at_once(monkeypatch):
    monkeypatch.setattr(replies, "FORGET_AGE", 3600.0)
    ids = RequestIds()
    answered = key(ids)
    ids.answered([answered])
    assert ids.forget_commands() == []
    assert [command[1:] for command in ids.forget_commands(now=True)] == [(answered,)]
