"""A project written only against Django's Tasks framework switches its TASKS setting to tempotask.

tests/djtasks_project is that project: its tasks import nothing of ours. With Django's
ImmediateBackend its tasks run inline; with TempotaskBackend (the only change) they are queued,
run by ``runworkers``, retried, and shown by the inspection API and the admin's pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from tempotask_django import JobStatus, api
from tests.conftest import ROOT

pytestmark = [pytest.mark.redis, pytest.mark.djtasks, pytest.mark.slow]

SETTINGS = "tests.djtasks_project.settings"


def manage(*args: str, backend: str) -> dict:
    """Run a management command of the project; returns its JSON output."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT),
        "SHOP_TASKS": backend,
        "TEMPOTASK_TEST_REDIS_URL": api.get_settings().redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_with_djangos_immediate_backend_tasks_run_inline(redis_client):
    results = manage("checkout", "7", backend="immediate")
    assert results["send_receipt"] == {
        "id": results["send_receipt"]["id"],
        "status": "SUCCESSFUL",
        "attempts": 1,
        "return_value": {"order": 7, "sent": True},
        "errors": [],
    }
    assert results["charge_card"]["status"] == "FAILED"  # no retries without a backend that has them
    assert results["refresh_stock"]["return_value"] == {"sku": "sku-7", "in_stock": 3}
    assert redis_client.dbsize() == 0


@pytest.mark.django_db
def test_switched_to_tempotask_the_same_tasks_queue_run_retry_and_show(workers, django_user_model):
    enqueued = manage("checkout", "8", backend="tempotask")
    assert {name: result["status"] for name, result in enqueued.items()} == dict.fromkeys(enqueued, "READY")
    ids = {name: result["id"] for name, result in enqueued.items()}

    # Visible at once through the inspection API, in the queues the tasks named.
    waiting = {job.id: job for queue in ("default", "emails") for job in api.list_jobs(queue, "waiting")}
    assert set(waiting) == set(ids.values())
    assert waiting[ids["send_receipt"]].queue == "emails"
    assert waiting[ids["charge_card"]].priority == 10 and waiting[ids["refresh_stock"]].priority == -5
    assert waiting[ids["charge_card"]].data["task"] == "tests.djtasks_project.shop.tasks.charge_card"

    process = workers.start(
        "--queues", "default", "emails", "--burst", settings_module=SETTINGS, env={"SHOP_TASKS": "tempotask"}
    )
    assert process.wait(timeout=60) == 0, workers.output(process)

    receipt, charge, stock = (api.get_job(ids[name]) for name in ("send_receipt", "charge_card", "refresh_stock"))
    assert {receipt.status, charge.status, stock.status} == {JobStatus.COMPLETED}
    assert receipt.result == {"order": 8, "sent": True} and stock.result == {"sku": "sku-8", "in_stock": 3}
    assert charge.attempt == 3 and [error["type"] for error in charge.errors] == ["ConnectionError"] * 2
    completed = {job.id for queue in ("default", "emails") for job in api.list_jobs(queue, "completed")}
    assert completed == set(ids.values())

    # And in the admin (the suite's own project, on the same Redis and key prefix, as a superuser).
    admin = Client()
    admin.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    label = "tests.djtasks_project.shop.tasks.{} (Django task)".format
    for queue, names in (("default", ["charge_card", "refresh_stock"]), ("emails", ["send_receipt"])):
        listed = admin.get(reverse("admin:tempotask_job_list", args=[queue, "completed"]))
        assert {job.id for job in listed.context["jobs"]} == {ids[name] for name in names}
        html = listed.content.decode()
        for name in names:
            assert reverse("admin:tempotask_job", args=[queue, ids[name]]) in html and f"<td>{label(name)}</td>" in html
    page = admin.get(reverse("admin:tempotask_job", args=["default", ids["charge_card"]]))
    assert page.status_code == 200 and page.context["job"].status == JobStatus.COMPLETED
    html = page.content.decode()
    assert label("charge_card") in html and "3 / 3" in html and "Errors (2)" in html
    assert "ConnectionError" in html and "gateway timeout (attempt 1)" in html
    assert "Traceback (most recent call last)" in html
    assert "&quot;charged&quot;: true" in html  # the return value, as the job's result

    # get_result() from yet another process of the project.
    status = manage("task_status", "charge_card", ids["charge_card"], backend="tempotask")
    assert status == {
        "id": ids["charge_card"],
        "status": "SUCCESSFUL",
        "attempts": 3,
        "return_value": {"order": 8, "charged": True, "attempt": 3},
        "errors": ["builtins.ConnectionError", "builtins.ConnectionError"],
    }
