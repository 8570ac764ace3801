"""OpenTelemetry tracing, when ``opentelemetry-api`` is installed (``tempotask-django[otel]``).

Enqueueing opens a PRODUCER span and writes its W3C trace context (``traceparent``, ``tracestate``)
into the job's record, as JSON (the ``trace`` field); each attempt of the job runs in a CONSUMER
span whose parent is that context, so a request, the jobs it enqueued and their child jobs form one
trace. Without the package nothing is imported (one failed import, once) and nothing changes; with
it but without an SDK configured, the API's no-op tracer makes each span nearly free.

The W3C propagator is used whatever the process' global propagator is: the record is read by other
processes, which must understand it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tempotask_django import partitions

if TYPE_CHECKING:
    from tempotask_django.job import Job
    from tempotask_django.storage.records import JobSpec

TRACER_NAME = "tempotask_django"
SYSTEM = "tempotask"

_api: Any = None  # None: not looked for yet; False: not installed; else (trace module, propagator)


def _opentelemetry() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            _api = False
        else:
            _api = (trace, TraceContextTextMapPropagator())
    return _api


def _provider_set(trace: Any) -> bool:
    """Is a tracer provider (an SDK) set? Without one, the API's tracer records nothing: a span
    only carries on the trace of its parent, so where there is no parent no span is needed (a
    span per job costs more than a job's bookkeeping at thousands of jobs a second)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _in_a_trace(trace: Any) -> bool:
    """Does the current context carry a trace (a span of the caller's, or the one a job continues)?"""
    return bool(trace.get_current_span().get_span_context().is_valid)


@contextlib.contextmanager
def producing(specs: Sequence[JobSpec]) -> Iterator[Sequence[JobSpec]]:
    """Around the enqueueing of ``specs`` (one call): a span, and the specs carrying its context."""
    api = _opentelemetry()
    if not api or not specs or (not _provider_set(api[0]) and not _in_a_trace(api[0])):
        yield specs  # nothing to record, and no trace to carry on
        return
    trace, propagator = api
    names = {spec.name for spec in specs}
    first = specs[0]
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.destination.name": first.queue,
        "tempotask.task": first.name if len(names) == 1 else ",".join(sorted(names)),
    }
    if len(specs) == 1:
        attributes["messaging.message.id"] = first.id
    else:
        attributes["messaging.batch.message_count"] = len(specs)
    span_name = f"tempotask enqueue {first.name}" if len(names) == 1 else "tempotask enqueue"
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(span_name, kind=trace.SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
        text = json.dumps(carrier, separators=(",", ":")) if carrier else ""
        yield [replace(spec, trace=text) for spec in specs] if text else specs


class RunSpan:
    """The span of one attempt (a no-op one without OpenTelemetry): ``failed(exc)`` marks it failed."""

    def __init__(self, span: Any = None, trace: Any = None) -> None:
        self._span = span
        self._trace = trace

    def failed(self, exc: BaseException) -> None:
        if self._span is not None:
            self._span.record_exception(exc)
            self._span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(exc).__name__))


_NO_SPAN = RunSpan()


@contextlib.contextmanager
def running(job: Job, carried: str | None) -> Iterator[RunSpan]:
    """Around one attempt of ``job``: a span continuing the trace ``carried`` in its record (a new
    trace when there is none, or when it is unreadable: a job never fails for its trace field)."""
    api = _opentelemetry()
    if not api or (not carried and not _provider_set(api[0])):
        yield _NO_SPAN  # nothing to record, and no trace for the job's child jobs to carry on
        return
    trace, propagator = api
    parent = propagator.extract(_carrier(carried)) if carried else None
    attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": partitions.logical(job.queue),  # the queue, not its partition
        "messaging.message.id": job.id,
        "tempotask.task": job.name,
        "tempotask.attempt": job.attempt,
    }
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"tempotask run {job.name}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield RunSpan(span, trace)


def _carrier(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {key: item for key, item in value.items() if isinstance(key, str) and isinstance(item, str)}
