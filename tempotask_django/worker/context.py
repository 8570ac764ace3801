"""The ``ctx`` a handler receives: the app context from settings, plus ``add_job`` for child jobs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.utils.module_loading import import_string

from tempotask_django.exceptions import ConfigurationError
from tempotask_django.job import Job

RESERVED_NAMES = frozenset({"add_job", "job"})


def load_app_context(path: str | None) -> Mapping[str, Any]:
    """Import TEMPOTASK["CONTEXT"]: a mapping, or a callable returning one (called once here)."""
    if not path:
        return {}
    try:
        target = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(f"TEMPOTASK['CONTEXT'] = {path!r} cannot be imported: {exc}") from exc
    values = target() if callable(target) and not isinstance(target, Mapping) else target
    if not isinstance(values, Mapping):
        raise ConfigurationError(
            f"TEMPOTASK['CONTEXT'] = {path!r} must be (or return) a mapping, not {type(values).__name__}"
        )
    clash = RESERVED_NAMES & set(values)
    if clash:
        raise ConfigurationError(f"TEMPOTASK['CONTEXT'] may not define {sorted(clash)}: ctx provides them")
    return values


class JobContext:
    """``ctx``: the app context's entries as attributes (``ctx.mailer``) and items, plus ``add_job``.

    ``ctx.add_job(name, data, **options)`` enqueues a child job: same options as ``add_job``, and
    the child's ``parent_id`` is the running job's id.
    """

    def __init__(self, values: Mapping[str, Any], job: Job, enqueue: Callable[..., str]) -> None:
        self.__dict__.update(values)
        self._values = values
        self.job = job
        self._enqueue = enqueue

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def add_job(self, name: str, data: Any = None, **options: Any) -> str:
        """Enqueue a child job of the running job; returns its id."""
        return self._enqueue(name, data, parent_id=self.job.id, **options)
