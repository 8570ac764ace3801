"""OpenTelemetry: enqueue opens a span, the job's run continues its trace; without the package, nothing.

The spans go to the SDK's in-memory exporter through a provider of the test's own (the code asks
``opentelemetry.trace.get_tracer``, patched here), so no global provider outlives a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tempotask_django import JobStatus, get_job
from tempotask_django.storage.connection import get_default_store
from tests.conftest import ROOT, _test_url
from tests.helpers import drain
from tests.testapp import tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def spans(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer", lambda name, *args, **kwargs: provider.get_tracer(name))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield exporter
    provider.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def record_field(queue: str, job_id: str, name: str) -> str | None:
    store = get_default_store()
    return store.client.hget(store.keys(queue).job(job_id), name)


def test_the_run_continues_the_trace_of_the_enqueue(store, spans):
    with trace.get_tracer("test").start_as_current_span("request") as request:
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
    carried = json.loads(record_field("default", job_id, "trace"))
    assert set(carried) == {"traceparent"} and carried["traceparent"].startswith("00-")
    drain()
    assert get_job(job_id).status == JobStatus.COMPLETED

    found = by_name(spans)
    (enqueue,) = found["tempotask enqueue add"]
    (run,) = found["tempotask run add"]
    trace_id = request.get_span_context().trace_id
    assert enqueue.kind == SpanKind.PRODUCER and enqueue.parent.span_id == request.get_span_context().span_id
    assert run.kind == SpanKind.CONSUMER and run.parent.span_id == enqueue.context.span_id
    assert enqueue.context.trace_id == run.context.trace_id == trace_id
    assert dict(enqueue.attributes) == {
        "messaging.system": "tempotask",
        "messaging.operation.type": "send",
        "messaging.destination.name": "default",
        "messaging.message.id": job_id,
        "tempotask.task": "add",
    }
    assert run.attributes["messaging.message.id"] == job_id and run.attributes["tempotask.attempt"] == 1
    assert run.status.status_code == StatusCode.UNSET


def test_child_jobs_join_the_trace_of_their_parent(store, spans, ledger):
    job_id = tasks.parent.enqueue({"children": 2})
    drain()
    assert get_job(job_id).status == JobStatus.COMPLETED
    found = by_name(spans)
    (parent_run,) = found["tempotask run parent"]
    child_enqueues = found["tempotask enqueue record"]
    child_runs = found["tempotask run record"]
    assert len(child_enqueues) == len(child_runs) == 2
    assert {span.parent.span_id for span in child_enqueues} == {parent_run.context.span_id}
    assert {span.parent.span_id for span in child_runs} == {span.context.span_id for span in child_enqueues}
    assert {span.context.trace_id for span in spans.get_finished_spans()} == {parent_run.context.trace_id}


def test_a_failed_attempt_marks_its_span_as_an_error(store, spans):
    job_id = tasks.always_fails.enqueue({})
    drain()
    drain()  # the retry (retry_delay 0)
    assert get_job(job_id).status == JobStatus.FAILED
    runs = by_name(spans)["tempotask run always_fails"]
    assert [span.attributes["tempotask.attempt"] for span in runs] == [1, 2]
    for span in runs:
        assert span.status.status_code == StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
    (enqueue,) = by_name(spans)["tempotask enqueue always_fails"]
    assert {span.parent.span_id for span in runs} == {enqueue.context.span_id}  # each retry continues it


def test_a_bulk_enqueue_is_one_span_that_every_job_continues(store, spans):
    ids = tasks.add.enqueue_many([{"a": n, "b": 0} for n in range(3)])
    drain()
    (enqueue,) = by_name(spans)["tempotask enqueue add"]
    assert enqueue.attributes["messaging.batch.message_count"] == 3
    runs = by_name(spans)["tempotask run add"]
    assert sorted(span.attributes["messaging.message.id"] for span in runs) == sorted(ids)
    assert {span.parent.span_id for span in runs} == {enqueue.context.span_id}


@pytest.mark.parametrize("damaged", ["not json", "[1, 2]", '{"traceparent": 7}', '{"traceparent": "00-bad"}'])
def test_an_unreadable_trace_field_starts_a_new_trace_and_the_job_runs(store, spans, damaged):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    store.client.hset(store.keys("default").job(job_id), "trace", damaged)
    drain()
    assert get_job(job_id).status == JobStatus.COMPLETED
    (run,) = by_name(spans)["tempotask run add"]
    assert run.parent is None


def test_without_a_tracer_provider_no_span_is_made_and_a_carried_trace_still_reaches_child_jobs(store, ledger):
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), "a test set a global provider"
    plain = tasks.add.enqueue({"a": 1, "b": 2})
    assert record_field("default", plain, "trace") is None  # no span around the enqueue, no trace
    job_id = tasks.parent.enqueue({"children": 2})
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    store.client.hset(store.keys("default").job(job_id), "trace", json.dumps({"traceparent": traceparent}))
    drain()
    children = get_job(job_id).result
    assert len(children) == 2
    for child in children:
        carried = json.loads(record_field("default", child, "trace"))
        assert carried["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert get_job(plain).status == JobStatus.COMPLETED


NO_OTEL = """
    import sys

    class NoOpenTelemetry:  # as if the package were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())
    import django
    django.setup()
    from tempotask_django import get_job
    from tempotask_django.storage.connection import get_default_store
    from tempotask_django.testing import run_jobs
    from tests.testapp import tasks

    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    store = get_default_store()
    assert store.client.hget(store.keys("default").job(job_id), "trace") is None
    run_jobs(["default"])
    assert get_job(job_id).status == "completed", get_job(job_id)
    assert not [name for name in sys.modules if name.startswith("opentelemetry")]
    print("ok")
"""

# (redis-py imports opentelemetry itself when it is installed: what is checked is that tempotask
# looks for it only when it enqueues or runs a job.)
LAZY = """
    import django
    django.setup()
    from tempotask_django import tracing
    from tempotask_django.worker import runner
    assert tracing._api is None, "looked up at start"
    from tests.testapp import tasks
    tasks.add.enqueue({"a": 1, "b": 2})
    assert tracing._api, "not found"
    print("ok")
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": _test_url(),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_without_opentelemetry_jobs_carry_no_trace_and_nothing_is_imported(redis_client):
    done = run_python(NO_OTEL)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


def test_opentelemetry_is_looked_up_only_when_a_job_is_enqueued_or_run(redis_client):
    done = run_python(LAZY)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


NO_FAKEREDIS = """
    import sys
    import django
    django.setup()
    from tempotask_django.management.commands import runworkers  # noqa: F401
    from tempotask_django.testing import run_jobs
    from tests.testapp import tasks

    tasks.add.enqueue({"a": 1, "b": 2})
    run_jobs(["default"])
    assert "fakeredis" not in sys.modules and "lupa" not in sys.modules, "immediate mode's Redis loaded"
    print("ok")
"""


def test_a_worker_on_redis_does_not_load_the_in_memory_redis_of_immediate_mode(redis_client):
    done = run_python(NO_FAKEREDIS)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
