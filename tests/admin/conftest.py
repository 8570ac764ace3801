"""Fixtures of the admin tests: users with different rights, and a queue state worth looking at."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tempotask_django import api
from tempotask_django.models import PERMISSIONS
from tests.helpers import drain

XSS = "<script>alert('x')</script>"


def admin_url(name: str, *args: str) -> str:
    """The URL of the admin view ``admin:<name>``."""
    return reverse(f"admin:{name}", args=args)


def grant(user, *codenames: str):
    ours = Permission.objects.filter(content_type__app_label="tempotask_django", codename__in=codenames)
    user.user_permissions.add(*ours)
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def viewer(django_user_model):
    """Staff with only the view permission."""
    return grant(django_user_model.objects.create_user("viewer", password="pw", is_staff=True), "view_dashboard")


@pytest.fixture
def outsider(django_user_model):
    """Not staff, although given every dashboard permission: the admin stays closed to them."""
    user = django_user_model.objects.create_user("outsider", password="pw")
    return grant(user, *PERMISSIONS)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def seeded(store, ledger, db):
    """Completed, failed, waiting, delayed, parent and child jobs in "default", and an idle "slow" queue."""
    ids = {
        "completed": api.add_job("add", {"a": 1, "b": 2}, job_id="done-1", on_commit=False),
        "failed": api.add_job("always_fails", {"why": "test"}, job_id="broken-1", on_commit=False),
        "parent": api.add_job("parent", {"children": 1}, job_id="parent-1", on_commit=False),
    }
    drain(["default"])
    ids["child"] = store.inspect.get_job("default", "parent-1").result[0]  # the parent returns its children's ids
    assert store.inspect.get_job("default", ids["child"]).parent_id == "parent-1"
    ids["waiting"] = api.add_job("record", {"html": XSS}, job_id="xss-1", on_commit=False)
    ids["delayed"] = api.add_job("add", {"a": 5, "b": 5}, job_id="later-1", delay=3600, on_commit=False)
    api.add_job("slow", {"seconds": 0}, job_id="slow-1", on_commit=False)
    return ids


def redis_state(client) -> dict:
    """Every key and its value (DUMP), to prove a request changed nothing. The replies scripts keep
    for a resend (``P:{Q}:reply:<rid>``, deleted with the next round trip) are not state."""
    keys = sorted(key for key in client.scan_iter(count=1000) if not key.startswith("tests:") and ":reply:" not in key)
    return {key: client.dump(key) for key in keys}
