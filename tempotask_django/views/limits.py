"""The limits of a queue as its page shows them: its RATE_LIMIT, each task's rate and concurrency
limits, and how many jobs wait on each (parked by the claim script, status still waiting)."""

from __future__ import annotations

from typing import Any

from tempotask_django.conf import get_settings
from tempotask_django.registry import registry
from tempotask_django.storage.limit_state import parked_limits, running_in
from tempotask_django.storage.store import RedisStore


def limit_rows(store: RedisStore, queue: str, waiting: int) -> dict[str, Any]:
    """What the queue page's Limits section shows; empty rows when the queue has no limit."""
    settings = get_settings()
    keys = store.keys(queue)
    states, unread = parked_limits(store.client, keys)
    # The queue's tasks, and the tasks of other queues whose jobs were sent here (queue=...) and wait.
    names = {task.name for task in registry if (task.queue or settings.default_queue) == queue}
    names.update(state.task for state in states)
    tasks = [task for task in map(registry.find, names) if task is not None]
    limited = {task.name: task for task in tasks if task.rate_limit or task.max_concurrency}
    running = running_in(store.client, keys, [name for name, task in limited.items() if not task.limit_key])
    rows = []
    for name, task in sorted(limited.items()):
        mine = [state for state in states if state.task == name]
        rows.append(
            {
                "task": name,
                "rate_limit": task.rate_limit,
                "max_concurrency": task.max_concurrency,
                "limit_key": task.limit_key,
                "waiting": sum(state.parked for state in mine),
                "keys_waiting": len(mine) if task.limit_key else None,
                "running": None if task.limit_key else running.get(name),
                "busiest": sorted(mine, key=lambda state: -state.parked)[:5] if task.limit_key else [],
            }
        )
    rate = settings.for_queue(queue).rate_limit
    return {
        "queue_rate": str(rate) if rate else None,
        "queue_waiting": waiting,
        "rows": rows,
        "more_limits": unread,
    }
