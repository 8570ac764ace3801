"""Settings of the sample project. Everything that varies comes from the environment (django-environ)."""

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env(
    DEBUG=(bool, True),
    REDIS_URL=(str, "redis://127.0.0.1:6379/0"),
    SECRET_KEY=(str, "sample-project-not-a-secret"),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
)
environ.Env.read_env(BASE_DIR / ".env")  # optional file; the environment wins

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tempotask_django",
    "demo",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # Django's Tasks framework, backported to 5.2
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "sample_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
WSGI_APPLICATION = "sample_project.wsgi.application"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "Europe/Paris"
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPOTASK = {
    "REDIS_URL": env("REDIS_URL"),
    "KEY_PREFIX": "tempotask-demo",
    "CONTEXT": "demo.context.build_context",
    "CONCURRENCY": 4,
    "QUEUES": {"notifications": {"CONCURRENCY": 2}},
    "ATTEMPTS": 3,
    "RETRY_DELAY": 2,
    "STALLED_TIMEOUT": 15,
    "MAX_JOBS_PER_STATUS": 300,
}

# Django's Tasks framework runs on tempotask too (demo/exports.py is written that way).
TASKS = {
    "default": {
        "BACKEND": "tempotask_django.backends.TempotaskBackend",
        "QUEUES": ["default", "notifications"],
        "OPTIONS": {"ATTEMPTS": 3, "RETRY_DELAY": 2},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "tempotask": {"handlers": ["console"], "level": "INFO"},
        "demo": {"handlers": ["console"], "level": "INFO"},
    },
}
