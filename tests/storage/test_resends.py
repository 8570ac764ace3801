"""A reply lost after Redis ran the command: the caller cannot tell whether it ran, and sends it again.

Each test talks to the test Redis through a proxy that forwards a request, lets the server run it,
then drops the connection before the reply (tempotask_django/chaos/proxy.py). A resend must never
apply a state change twice: a script resent carries the request id of the first send and gets
that send's stored reply; a command that cannot be made so is not resent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from redis.exceptions import ConnectionError

from tempotask_django.chaos.proxy import ReplyDroppingProxy
from tempotask_django.conf import get_settings
from tempotask_django.storage import replies
from tempotask_django.storage.direct import RESEND_PAUSES
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.records import Finish, JobSpec
from tempotask_django.storage.replies import FORGET_AFTER
from tempotask_django.storage.scripts import SCRIPT_NAMES
from tempotask_django.storage.store import RedisStore
from tests.conftest import _test_url
from tests.helpers import finish, status_of

pytestmark = [pytest.mark.redis, pytest.mark.one_server]

Q = "default"


def spec(job_id: str, queue: str = Q, *, checked: bool = True, **options) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=queue, data=json.dumps({"a": 1}), checked=checked, **options)


@pytest.fixture
def proxy(redis_client) -> Iterator[ReplyDroppingProxy]:
    target = urlsplit(_test_url())
    with ReplyDroppingProxy(target.hostname or "127.0.0.1", target.port or 6379) as running:
        yield running


@pytest.fixture
def proxied(proxy) -> Iterator[RedisStore]:
    """A store whose every connection goes through the proxy, with its connections already open
    (a resend happens on a reused connection)."""
    db = urlsplit(_test_url()).path.lstrip("/") or "0"
    pool = redis.ConnectionPool.from_url(f"redis://127.0.0.1:{proxy.port}/{db}", decode_responses=True)
    store = RedisStore(redis.Redis(connection_pool=pool), get_settings())
    store.register_queue(Q)
    store.scripts.load(SCRIPT_NAMES)  # a first call answered NOSCRIPT would lose a reply nobody cares about
    store.direct.call("PING")
    yield store
    store.close()


def pending_of(store: RedisStore, consumer: str) -> list[str]:
    pending = store.client.xpending_range(store.keys(Q).stream, CONSUMER_GROUP, "-", "+", 100, consumer)
    return [entry["message_id"] for entry in pending]


def test_a_claim_whose_reply_is_lost_leases_its_batch_to_the_worker_it_returns_it_to(store, proxied, proxy):
    store.enqueue_many([spec("a"), spec("b")])
    proxy.drop_next()
    claimed = proxied.claim(Q, "w1", 1)
    assert proxy.drops == 1
    # One claim ran: job a is leased to w1, which got it; b still waits for anyone.
    assert [job["id"] for job in claimed.jobs] == ["a"]
    assert pending_of(store, "w1") == [claimed.jobs[0]["entry"]]
    assert status_of(store, Q, "b") == "waiting"


def test_an_enqueue_whose_reply_is_lost_does_not_reset_the_job_a_worker_just_claimed(store, proxied, proxy):
    claimed = []
    # In the instant between the enqueue and its resend, another worker claims the new job.
    proxy.drop_next(then=lambda: claimed.extend(store.claim(Q, "w2", 1).jobs))
    added = proxied.enqueue(spec("random-id", checked=False))
    assert [job["id"] for job in claimed] == ["random-id"]
    assert added == (True, "waiting")
    assert status_of(store, Q, "random-id") == "processing"
    assert store.client.zcard(store.keys(Q).waiting) == 0


def test_a_lost_reply_to_a_queue_s_first_enqueue_does_not_leave_it_unregistered(store, proxied, proxy):
    proxied.enqueue(spec("old", "reports"))
    assert store.delete_job("reports", "old") == "waiting"  # the queue is left with nothing: forgotten
    assert "reports" not in store.client.smembers(store.global_keys.queues)
    sends = len(RESEND_PAUSES) + 1
    proxy.drop_next(sends)  # the enqueue and every resend lose their replies: the caller sees an error
    with pytest.raises(ConnectionError):
        proxied.enqueue(spec("new", "reports"))
    assert proxy.drops == sends
    proxied.enqueue(spec("newer", "reports"))
    assert "reports" in store.client.smembers(store.global_keys.queues)


def test_finishes_whose_reply_is_lost_are_recorded_once_and_reported_accepted(store, proxied, proxy):
    store.enqueue_many([spec("ok"), spec("ko")])
    jobs = {job["id"]: job for job in store.claim(Q, "w1", 2).jobs}
    error = json.dumps({"type": "ValueError", "message": "no", "traceback": ""})
    proxy.drop_next()
    outcomes = finish(
        proxied,
        "w1",
        [Finish(Q, jobs["ok"]["entry"], "ok", True, "1"), Finish(Q, jobs["ko"]["entry"], "ko", False, error)],
    )
    assert [outcome.accepted for outcome in outcomes] == [True, True]
    assert status_of(store, Q, "ok") == "completed"
    assert status_of(store, Q, "ko") == "failed"
    assert store.client.llen(store.keys(Q).errors("ko")) == 1


def test_a_log_line_whose_reply_is_lost_is_written_once(store, proxied, proxy):
    store.enqueue(spec("a"))
    proxy.drop_next()
    assert proxied.append_log(Q, "a", json.dumps({"t": 1, "message": "hello"}))
    assert store.client.llen(store.keys(Q).logs("a")) == 1


def test_a_delete_and_a_retry_whose_replies_are_lost_report_what_they_did(store, proxied, proxy):
    store.enqueue_many([spec("a"), spec("b", delay_ms=60_000)])
    proxy.drop_next()
    assert proxied.delete_job(Q, "a") == "waiting"
    proxy.drop_next()
    assert proxied.retry_job(Q, "b") == "delayed"
    assert proxy.drops == 2


def test_a_command_that_is_not_safe_to_resend_is_not_resent(proxied, proxy):
    before = proxy.requests
    proxy.drop_next()
    with pytest.raises(ConnectionError):
        proxied.direct.pipeline([("INCR", "tempotask:test:counter")])
    assert proxy.requests == before + 1
    assert proxied.client.get("tempotask:test:counter") == "1"


def test_every_script_resent_without_a_request_id_is_named_and_exists():
    from tempotask_django.storage.scripts import RESENT_WITHOUT_REQUEST_ID

    # The others get a request id (scripts.py); a new script gets one unless it is listed here.
    assert set(SCRIPT_NAMES) >= RESENT_WITHOUT_REQUEST_ID
    assert {"enqueue", "claim", "complete", "fail", "reclaim", "delete", "retry", "log"}.isdisjoint(
        RESENT_WITHOUT_REQUEST_ID
    )


def test_a_claim_repeated_after_every_resend_failed_gets_the_batch_its_first_run_leased(store, proxied, proxy):
    store.enqueue_many([spec("a"), spec("b")])
    proxy.drop_next(len(RESEND_PAUSES) + 1)
    with pytest.raises(ConnectionError):
        proxied.claim(Q, "w1", 1)
    # The worker tries again: the same call is answered by the run that leased job a.
    assert [job["id"] for job in proxied.claim(Q, "w1", 1).jobs] == ["a"]
    assert len(pending_of(store, "w1")) == 1
    assert status_of(store, Q, "b") == "waiting"


def test_a_claim_repeated_after_its_leases_may_have_expired_claims_anew(store, proxied, proxy):
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    assert [job["id"] for job in proxied.claim(Q, "w1", 1).jobs] == ["a"]  # names b's record for the next
    proxied.scripts.requests.lease_window = 0  # (half of STALLED_TIMEOUT): already past
    proxy.drop_next(len(RESEND_PAUSES) + 1)
    with pytest.raises(ConnectionError):
        proxied.claim(Q, "w1", 1)
    # Job b may be another worker's by now: never handed out from the stored reply; b stays
    # leased until a take-over.
    assert [job["id"] for job in proxied.claim(Q, "w1", 1).jobs] == ["c"]


def test_stored_replies_are_deleted_once_their_callers_have_them(store, monkeypatch):
    monkeypatch.setattr(replies, "FORGET_AGE", 3600.0)  # only the count matters here

    def stored() -> list[str]:
        return list(store.client.scan_iter(match=f"{store.keys(Q).reply('')}*", count=1000))

    for n in range(FORGET_AFTER):
        store.enqueue(spec(f"job-{n}"))
    assert len(stored()) == FORGET_AFTER
    assert 0 < store.client.pttl(stored()[0]) <= 300_000  # a caller that never got its reply: they expire
    store.enqueue(spec("one-more"))  # takes the answered ones with it
    assert len(stored()) == 1
    monkeypatch.setattr(replies, "FORGET_AGE", 0.0)  # an idle caller's leftovers go with its next call
    store.enqueue(spec("after-a-while"))
    assert len(stored()) == 1 and store.keys(Q).reply("") in stored()[0]


def test_a_claim_sent_with_a_wait_that_fails_still_hands_out_its_batch(store):
    store.enqueue(spec("a"))
    # The wait is refused (a malformed id: ERR); the claim behind it in the pipeline runs all the same.
    claimed = store.wait_then_claim({Q: "not-an-id"}, 10, Q, "w1", 1)
    assert [job["id"] for job in claimed.jobs] == ["a"]


class StartedJobs:
    """A dispatcher that only records the jobs a claimer starts."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def start(self, queue: str, fields: dict[str, str]) -> None:
        self.ids.append(fields["id"])


def test_a_worker_claim_that_raised_is_repeated_at_once_and_starts_the_batch_its_first_run_leased(
    store, proxied, proxy
):
    """The worker repeats a claim that raised itself, with the same slots held: left to a later
    claim with less room (the finisher refilled meanwhile), its batch would be leased to nobody
    until STALLED_TIMEOUT."""
    from tempotask_django.storage.outage import ErrorThrottle
    from tempotask_django.worker.claimer import Claimer
    from tempotask_django.worker.slots import Slots

    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    slots, started = Slots(4, {Q: 4}, None), StartedJobs()
    claimer = Claimer(proxied, "w1", [Q], slots, started, ErrorThrottle())  # type: ignore[arg-type]
    proxy.drop_next(len(RESEND_PAUSES) + 1)
    assert claimer.claim(Q, slots.reserve(Q, 2)).jobs
    assert started.ids == ["a", "b"]
    assert len(pending_of(store, "w1")) == 2
    assert slots.free() == 2
    assert status_of(store, Q, "c") == "waiting"


def test_a_claim_sent_again_for_the_keys_it_lacked_is_repeated_until_answered(store, proxied, proxy, monkeypatch):
    """A first claim lacks the keys of the jobs it finds and is sent again at once, declaring them;
    when every resend of that call failed, its batch may be leased already: the store repeats the
    same call (the caller still holds the slots) rather than leave the batch to a later claim."""
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    run, claims = proxied.scripts.run, []

    def dropping_the_follow_up(script, *args, **kwargs):
        if script == "claim":
            claims.append(args)
            if len(claims) == 2:
                proxy.drop_next(len(RESEND_PAUSES) + 1)
        return run(script, *args, **kwargs)

    monkeypatch.setattr(proxied.scripts, "run", dropping_the_follow_up)
    claimed = proxied.claim(Q, "w1", 3)
    assert len(claims) >= 2, "the first claim did not lack keys: the test proves nothing"
    assert sorted(job["id"] for job in claimed.jobs) == ["a", "b", "c"]
    assert len(pending_of(store, "w1")) == 3


def test_a_claim_repeated_after_another_claim_of_the_worker_answered_still_gets_its_batch(store, proxied, proxy):
    """The worker loop and the finisher both claim: a claim answered between a claim that raised
    and its repeat changes the keys and carried-over entries the next claim declares, not what
    the repeat must get."""
    store.enqueue_many([spec(job_id) for job_id in "abcdefgh"])
    assert [job["id"] for job in proxied.claim(Q, "w1", 1).jobs] == ["a"]
    proxy.drop_next(len(RESEND_PAUSES) + 1)
    with pytest.raises(ConnectionError):
        proxied.claim(Q, "w1", 2)  # ran: b and c are leased to w1
    handed_out = [job["entry"] for job in proxied.claim(Q, "w1", 1).jobs]  # the other thread's claim
    handed_out += [job["entry"] for job in proxied.claim(Q, "w1", 2).jobs]  # the repeat
    # Every job leased to w1 was handed to it (none waits for a take-over), once.
    assert sorted(handed_out) == sorted(pending_of(store, "w1")[1:])
    assert len(handed_out) == len(set(handed_out))


def test_a_claim_answered_in_a_round_trip_that_raised_later_is_repeated_with_its_batch(
    store, proxied, proxy, monkeypatch
):
    """A round trip's calls refused (NOSCRIPT: a fresh or restarted server) are sent again after
    the others were answered; when that second send raises, the answered claim's batch is lost
    with the raise unless its repeat gets it (a fresh worker's finisher lost jobs so)."""
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    assert proxied.claim(Q, "w1", 1).jobs  # the claim now knows the next jobs' keys
    store.client.script_flush()
    proxied.scripts.load(["claim"])
    load = proxied.scripts.load

    def load_then_lose_the_next_replies(names):
        load(names)
        proxy.drop_next(len(RESEND_PAUSES) + 1)

    monkeypatch.setattr(proxied.scripts, "load", load_then_lose_the_next_replies)
    keys = store.keys(Q)
    log_call = ("log", Q, ["nobody", '"line"', 10], [keys.job("nobody"), keys.logs("nobody")])
    with pytest.raises(ConnectionError):
        proxied.scripts.pipeline([proxied._claim_call(Q, "w1", 1), log_call])  # the claim ran: b is leased
    monkeypatch.setattr(proxied.scripts, "load", load)
    repeated = proxied.claim(Q, "w1", 1).jobs
    assert [job["id"] for job in repeated] == ["b"]
    assert status_of(store, Q, "c") == "waiting"
