"""``manage.py tempotask stats``: every queue's counts, the live workers and beats, the schedules.

The numbers are those of the admin's overview, read the same way (a bounded number of round trips
however long the history is).
"""

from __future__ import annotations

from typing import Any

from tempotask_django.models import VIEW
from tempotask_django.ops import backend, cli
from tempotask_django.ops.audit import Operator
from tempotask_django.storage.presence import worker_figures

COUNTS = ("waiting", "delayed", "processing", "completed", "failed", "cancelled")
HEADERS = ("QUEUE", *(name.upper() for name in COUNTS), "OLDEST WAITING", "WORKERS", "PAUSED")


def heartbeat_age(heartbeat_ms: str | int | None, now_ms: int) -> float | None:
    """Seconds since a heartbeat stamped ``heartbeat_ms`` by the Redis clock."""
    return max(0.0, (now_ms - int(heartbeat_ms)) / 1000) if heartbeat_ms else None


def collect() -> dict[str, Any]:
    """Everything ``stats`` shows, as plain data (what ``--json`` prints)."""
    queues = backend.all_queues()
    stats = backend.queue_stats(queues)
    now_ms = backend.server_time_ms()
    live = backend.workers()
    workers: list[dict[str, Any]] = [{"id": worker["id"], **worker_figures(worker, now_ms)} for worker in live]
    beats = [
        {
            "id": beat.id,
            "kind": beat.kind,
            "schedules": beat.schedules,
            "heartbeat_age": heartbeat_age(int(beat.heartbeat.timestamp() * 1000), now_ms) if beat.heartbeat else None,
        }
        for beat in backend.beats()
    ]
    crons = backend.crons()
    rows = []
    for queue in stats:
        row = queue.as_dict()
        row["workers"] = sum(1 for worker in workers if queue.queue in worker["queues"])
        rows.append(row)
    return {
        "queues": rows,
        "totals": {name: sum(row[name] for row in rows) for name in COUNTS},
        "workers": workers,
        "beats": beats,
        "crons": {"total": len(crons), "paused": sum(1 for cron in crons if cron.paused)},
    }


def render(data: dict[str, Any]) -> str:
    """``collect()``'s data for a terminal: a table of queues, then a line each on processes and schedules."""
    rows = [
        (
            row["queue"],
            *(row[name] for name in COUNTS),
            cli.age(row["oldest_job_age"]) if row["oldest_job_age"] is not None else None,
            row["workers"],
            "yes" if row["paused"] else "no",
        )
        for row in data["queues"]
    ]
    rows.append(("TOTAL", *(data["totals"][name] for name in COUNTS), None, None, None))
    workers = ", ".join(f"{worker['id']} ({','.join(worker['queues'])})" for worker in data["workers"])
    beats = ", ".join(f"{beat['id']} ({beat['kind']})" for beat in data["beats"])
    crons = data["crons"]
    return "\n".join(
        [
            cli.table(HEADERS, rows),
            "",
            f"Live workers ({len(data['workers'])})" + (f": {workers}" if workers else ""),
            f"Live cron beats ({len(data['beats'])})" + (f": {beats}" if beats else ""),
            f"Cron schedules: {crons['total']} ({crons['paused']} paused)",
        ]
    )


def show(operator: Operator, as_json: bool = False) -> str:
    operator.require(VIEW)
    data = collect()
    return cli.as_json(data) if as_json else render(data)
