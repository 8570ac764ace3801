"""Django settings of the chaos suite's worker processes (and of its driver).

Everything comes from the environment the driver sets: ``CHAOS_REDIS_URL`` (the queue's Redis),
``CHAOS_LEDGER_URL`` (where tasks record their runs), ``CHAOS_OVERRIDES`` (JSON merged into
TEMPOTASK). No database is used.
"""

import json
import os

SECRET_KEY = "chaos-suite-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["tempotask_django", "tempotask_django.chaos"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

CHAOS_LEDGER_URL = os.environ.get("CHAOS_LEDGER_URL", "redis://127.0.0.1:6379/0")

TEMPOTASK = {
    "REDIS_URL": os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "KEY_PREFIX": "chaos",
    "DEFAULT_QUEUE": "chaos",
    "CONTEXT": "tempotask_django.chaos.handlers.context",
    **json.loads(os.environ.get("CHAOS_OVERRIDES", "{}")),
}

# One line per event, with the epoch time first so the driver can count lines inside a time window.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"chaos": {"format": "%(created).3f %(levelname)s [%(process)d] %(message)s"}},
    # The level is on the handler: runworkers sets the logger's own level from --verbosity.
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "chaos",
            "level": os.environ.get("CHAOS_LOG_LEVEL", "WARNING"),
        }
    },
    "loggers": {"tempotask": {"handlers": ["stderr"]}},
}
