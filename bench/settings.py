"""Django settings of the benchmark project: one app with the benchmark tasks, Redis from $BENCH_REDIS_URL."""

import json
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tempotask_django",
    "bench.benchapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

TEMPOTASK = {
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "KEY_PREFIX": "bench",
    "CONTEXT": "bench.benchapp.context.build_context",
    **json.loads(os.environ.get("BENCH_TEMPOTASK", "{}")),
}
