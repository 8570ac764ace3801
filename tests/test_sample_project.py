"""The sample project's tasks run: its own settings, its own worker command, the suite's Redis.

Each kind of job the documentation walks through (one-off, failing and retrying, a child job, delayed, async,
the app context's mailer, a Django Tasks framework task) is enqueued from the project's shell and
run by ``manage.py runworkers`` as ``manage.py demo`` starts it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, _test_url
from tests.helpers import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SAMPLE = ROOT / "sample_project"
PREFIX = "tempotask-demo"

ENQUEUE = """
import json
from demo import exports, tasks
from tempotask_django import get_job
ids = {
    "notification": tasks.send_notification.enqueue({"user_id": 7}, on_commit=False),
    "payment": tasks.charge_card.enqueue({"amount": 42}, on_commit=False),
    "report": tasks.build_report.enqueue({}, delay=1, on_commit=False),
    "weather": tasks.fetch_weather.enqueue({"city": "Lyon"}, on_commit=False),
    "export": exports.export_orders.enqueue("2026-03").id,
}
print(json.dumps({"ids": ids, "report_status": get_job(ids["report"]).status}))
"""


@pytest.fixture
def sample_env(redis_client, tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": _test_url(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sample.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    yield env
    for key in redis_client.scan_iter(f"{PREFIX}:*"):
        redis_client.delete(key)


def test_the_sample_projects_tasks_run_retry_spawn_wait_and_use_the_context(sample_env, redis_client, tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ENQUEUE],
        cwd=SAMPLE,
        env=sample_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    enqueued = json.loads(done.stdout.strip().splitlines()[-1])
    ids = enqueued["ids"]
    assert enqueued["report_status"] == "delayed"
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworkers", "--queues", "notifications", "default", "crons"],
            cwd=SAMPLE,
            env=sample_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def job(job_id: str, queue: str) -> dict:
        base = f"{PREFIX}:{{{queue}}}"
        fields = redis_client.hgetall(f"{base}:job:{job_id}")
        fields["logs"] = [json.loads(line)["message"] for line in redis_client.lrange(f"{base}:logs:{job_id}", 0, -1)]
        fields["errors"] = [json.loads(line) for line in redis_client.lrange(f"{base}:errors:{job_id}", 0, -1)]
        return fields

    where = {
        "notification": "notifications",
        "email": "notifications",
        "payment": "default",
        "report": "default",
        "weather": "default",
        "export": "default",
    }
    ids["email"] = "email-7"  # the notification's child job, enqueued with this id

    def all_finished() -> dict[str, dict] | None:
        found = {name: job(ids[name], queue) for name, queue in where.items()}
        return found if all(fields.get("status") in ("completed", "failed") for fields in found.values()) else None

    try:
        # charge_card fails three times, 2 s then about 4 s apart (exponential backoff).
        jobs = wait_until(all_finished, timeout=60, interval=0.2, message="every sample job to finish")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    output = log.read_text()
    status = {name: fields["status"] for name, fields in jobs.items()}
    assert status == {**dict.fromkeys(where, "completed"), "payment": "failed"}, output

    notification, email = jobs["notification"], jobs["email"]
    assert json.loads(notification["result"]) == {"sent": True}
    assert notification["logs"] == ["sending to 7", {"child": "email-7"}]
    assert email["parent_id"] == ids["notification"] and json.loads(email["result"]) == {"mailed": 7}
    assert "MAIL to=user-7@example.com subject='Hello from tempotask'" in output  # ctx.mailer, from CONTEXT

    payment = jobs["payment"]
    assert payment["attempt"] == "3" and len(payment["errors"]) == 3
    assert {(e["type"], e["message"]) for e in payment["errors"]} == {("ConnectionError", "payment gateway timed out")}
    assert payment["logs"] == [f"charging 42 (attempt {n} of 3)" for n in (1, 2, 3)]

    report = jobs["report"]
    assert report["logs"] == ["collecting numbers"] and set(json.loads(report["result"])) == {"rows"}
    assert int(report["started_at"]) - int(report["enqueued_at"]) >= 1000  # it waited for its delay
    assert json.loads(jobs["weather"]["result"])["city"] == "Lyon"

    export = jobs["export"]
    result = json.loads(export["result"])
    assert (result["month"], result["attempt"]) == ("2026-03", int(export["attempt"]))
    assert json.loads(export["data"])["task"] == "demo.exports.export_orders"


def test_a_project_never_loads_the_chaos_suite(sample_env):
    """The chaos suite ships in the wheel, but only its own settings install it."""
    script = (
        "import sys; from django.urls import get_resolver; from django.core import checks; "
        "get_resolver().url_patterns; checks.run_checks(); "
        "import tempotask_django.management.commands.runworkers, tempotask_django.management.commands.runcron; "
        "print(sorted(name for name in sys.modules if name.startswith('tempotask_django.chaos')))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=SAMPLE,
        env=sample_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
