"""How long the admin dashboard's pages take with large queues.

Starts its own Redis (EmbeddedRedis), fills it through the store's real paths with HISTORY finished
jobs (90% completed, 10% failed, two task names), WAITING waiting jobs, a live worker, 20 cron
schedules that ran once and a live beat, then times each page with Django's test client as a
logged-in superuser: median and 90th percentile of RUNS requests, after a warm-up. Run from the
repository root:

    .venv/bin/python bench/admin_pages.py [--history 100000] [--waiting 10000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
# Cron schedules registered (the test app adds its own two).
CRONS = 20


def fill(history: int, waiting: int) -> dict[str, float]:
    from tempotask_django import api
    from tempotask_django.storage.connection import get_default_store
    from tempotask_django.storage.records import Finish

    store = get_default_store()
    took = {}
    start = time.perf_counter()
    for offset in range(0, history, BATCH):
        count = min(BATCH, history - offset)
        api.add_jobs(
            [{"name": "add" if n % 7 else "record", "data": {"a": n, "b": 1}} for n in range(offset, offset + count)],
            on_commit=False,
        )
        claimed = store.claim("default", "bench-worker", count).jobs
        error = json.dumps({"attempt": 1, "type": "ValueError", "message": "bad", "traceback": "Traceback ...", "t": 0})
        finishes = [
            Finish("default", job["entry"], job["id"], index % 10 != 0, "3" if index % 10 else error)
            for index, job in enumerate(claimed)
        ]
        store.finish_and_claim("bench-worker", finishes)
    took["history"] = time.perf_counter() - start
    start = time.perf_counter()
    for offset in range(0, waiting, BATCH):
        count = min(BATCH, waiting - offset)
        api.add_jobs([{"name": "noop", "data": n} for n in range(offset, offset + count)], on_commit=False)
    took["waiting"] = time.perf_counter() - start
    store.register_worker("bench:1:abc", {"host": "bench", "pid": 1, "queues": "default", "concurrency": 4}, 600)
    add_crons(store)
    return took


def add_crons(store, count: int = CRONS) -> None:
    """``count`` cron schedules, each run once, and a live beat: what the overview and the cron page read."""
    from tempotask_django import run_cron_now
    from tempotask_django.cron import CronBeat, collect_schedules

    crons = {f"every-{n}-minutes": {"task": "noop", "cron": f"*/{n} * * * *"} for n in range(1, count + 1)}
    beat = CronBeat(collect_schedules(raw={"CRONS": crons}), kind="runcron")
    beat.sync()
    for name in crons:
        run_cron_now(name)
    beat.heartbeat(store.server_time_ms())


def time_pages(runs: int) -> dict[str, dict[str, float]]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from tempotask_django.storage.connection import get_default_store

    store = get_default_store()
    failed_id = store.inspect.list_job_ids("default", "failed", 0, 1)[0]
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)
    lists = "admin:tempotask_job_list"
    pages = {
        "overview": reverse("admin:tempotask_overview"),
        "overview.json": reverse("admin:tempotask_overview_data"),
        "waiting, page 1": reverse(lists, args=["default", "waiting"]),
        "completed, page 1": reverse(lists, args=["default", "completed"]),
        "completed, page 1000": reverse(lists, args=["default", "completed"]) + "?p=1000",
        "completed, task filter": reverse(lists, args=["default", "completed"]) + "?task=record",
        "search by id": reverse(lists, args=["default", "waiting"]) + f"?q={failed_id}",
        "job detail": reverse("admin:tempotask_job", args=["default", failed_id]),
        "workers": reverse("admin:tempotask_workers"),
        "cron schedules": reverse("admin:tempotask_crons"),
    }
    results = {}
    for name, url in pages.items():
        for _ in range(3):
            assert client.get(url).status_code == 200, name
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, name
        samples.sort()
        results[name] = {
            "median_ms": round(statistics.median(samples), 2),
            "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 2),
            "min_ms": round(samples[0], 2),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=100_000, help="finished jobs kept (default %(default)s)")
    parser.add_argument("--waiting", type=int, default=10_000, help="waiting jobs (default %(default)s)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page (default %(default)s)")
    args = parser.parse_args()

    from tempotask_django.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        sys.path.insert(0, str(ROOT))
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "TEMPOTASK_TEST_REDIS_URL": server.url,
                # Keep the whole history: the point is a large completed and failed set.
                "TEMPOTASK_TEST_OVERRIDES": json.dumps({"MAX_JOBS_PER_STATUS": args.history}),
            }
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        import redis

        version = redis.Redis.from_url(server.url).info("server")["redis_version"]
        print(f"Redis {version} ({server.binary}); filling {args.history} finished + {args.waiting} waiting jobs")
        took = fill(args.history, args.waiting)
        from tempotask_django.storage.connection import get_default_store

        stats = get_default_store().inspect.queue_stats("default")
        print(f"filled in {took['history']:.1f} s (history) + {took['waiting']:.1f} s (waiting): {stats.as_dict()}")
        results = time_pages(args.runs)
    print(f"\n{'page':<26}{'median ms':>10}{'p90 ms':>10}{'min ms':>10}   ({args.runs} requests each)")
    for name, numbers in results.items():
        print(f"{name:<26}{numbers['median_ms']:>10.2f}{numbers['p90_ms']:>10.2f}{numbers['min_ms']:>10.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "admin_pages.json").write_text(json.dumps({"args": vars(args), "pages": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
