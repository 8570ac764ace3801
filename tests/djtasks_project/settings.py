"""A small project written only against Django's Tasks framework.

``SHOP_TASKS`` picks its TASKS setting: "immediate" (Django's own ImmediateBackend) or "tempotask";
switching it is the only change the project needs. Redis: $TEMPOTASK_TEST_REDIS_URL (the suite's).
"""

import os

import django

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "tests.djtasks_project.shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the backport, as its documentation asks
    IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
else:
    IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"

QUEUES = ["default", "emails"]

if os.environ.get("SHOP_TASKS") == "tempotask":
    INSTALLED_APPS.append("tempotask_django")
    TASKS = {
        "default": {
            "BACKEND": "tempotask_django.backends.TempotaskBackend",
            "QUEUES": QUEUES,
            "OPTIONS": {
                "PER_TASK": {"tests.djtasks_project.shop.tasks.charge_card": {"ATTEMPTS": 3, "RETRY_DELAY": 0}}
            },
        }
    }
    TEMPOTASK = {"REDIS_URL": os.environ["TEMPOTASK_TEST_REDIS_URL"], "KEY_PREFIX": "tempotask-test"}
else:
    TASKS = {"default": {"BACKEND": IMMEDIATE, "QUEUES": QUEUES}}
