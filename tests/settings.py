"""Settings of the test project. Redis: $TEMPOTASK_TEST_REDIS_URL, else $REDIS_URL's server, db 15."""

import json
import os
from urllib.parse import urlsplit, urlunsplit


def _test_redis_url() -> str:
    explicit = os.environ.get("TEMPOTASK_TEST_REDIS_URL")
    if explicit:
        return explicit
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query="db=15"))
    return urlunsplit(parts._replace(path="/15"))


if os.environ.get("TEMPOTASK_TEST_CLOCK_SKEW"):  # subprocess tests: a host whose clock is off
    from tests.clock_skew import skew_host_clock

    skew_host_clock(float(os.environ["TEMPOTASK_TEST_CLOCK_SKEW"]))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tempotask_django",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TEMPOTASK_TEST_DB", ":memory:"),
        "TEST": {"NAME": os.environ.get("TEMPOTASK_TEST_DB")},
    }
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

TEMPOTASK = {
    "REDIS_URL": _test_redis_url(),
    "KEY_PREFIX": "tempotask-test",
    "CONTEXT": "tests.testapp.context.build_context",
    "STALLED_TIMEOUT": 30,
    "SHUTDOWN_TIMEOUT": 10,
    # scripts/test-cluster and scripts/test-sentinel run the suite on servers of their own.
    **({"REDIS_MODE": "cluster"} if os.environ.get("TEMPOTASK_TEST_REDIS_MODE") == "cluster" else {}),
    **(
        {
            "REDIS_MODE": "sentinel",
            "SENTINELS": json.loads(os.environ["TEMPOTASK_TEST_SENTINELS"]),
            "SENTINEL_MASTER": os.environ["TEMPOTASK_TEST_SENTINEL_MASTER"],
        }
        if os.environ.get("TEMPOTASK_TEST_REDIS_MODE") == "sentinel"
        else {}
    ),
    # Subprocess tests pass their own values through the environment.
    **json.loads(os.environ.get("TEMPOTASK_TEST_OVERRIDES", "{}")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"tempotask": {"handlers": ["stderr"], "level": os.environ.get("TEMPOTASK_TEST_LOG_LEVEL", "WARNING")}},
}

# Django's Tasks framework runs on tempotask (tests/testapp/dtasks.py). The backport needs no
# INSTALLED_APPS entry for that; tests/djtasks_project shows the usual setup with it.
TASKS = {
    "default": {
        "BACKEND": "tempotask_django.backends.TempotaskBackend",
        "QUEUES": ["default", "slow", "other", "prio"],
        "OPTIONS": {"PER_TASK": {"tests.testapp.dtasks.flaky": {"ATTEMPTS": 3, "RETRY_DELAY": 0}}},
    }
}
