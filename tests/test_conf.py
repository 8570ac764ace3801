"""Settings: defaults, validation, system checks, password masking. No Redis needed."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from django.core import checks
from django.core.checks import run_checks
from django.test import override_settings

from tempotask_django.conf import DEFAULTS, SETTINGS, Settings, build_settings, get_settings, mask_url, validate
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.storage.connection import make_client


def ids(raw) -> list[str]:
    return [check_id for check_id, _, _ in validate(raw)]


def test_every_key_is_optional():
    settings = build_settings({})
    assert settings.redis_url == DEFAULTS["REDIS_URL"] == "redis://localhost:6379/0"
    assert settings.max_jobs_per_status == 300
    assert settings.enqueue_on_commit is True
    assert (settings.cron_beat_heartbeat, settings.cron_beat_ttl) == (10.0, 30.0)
    assert build_settings({"CRON_BEAT_HEARTBEAT": 0.5}).cron_beat_ttl == 1.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], ["tempotask.E001"]),
        ({"REDIS_URLS": "redis://x"}, ["tempotask.E002"]),
        ({"CONCURRENCY": "4"}, ["tempotask.E003"]),
        ({"CONCURRENCY": True}, ["tempotask.E003"]),
        ({"BACKOFF": "linear"}, ["tempotask.E003"]),
        ({"MAX_JOBS_PER_STATUS": 0}, ["tempotask.E003"]),
        ({"REDIS_URL": "http://localhost"}, ["tempotask.E004"]),
        ({"REDIS_URL": "redis://localhost:notaport/0"}, ["tempotask.E004"]),
        ({"REDIS_URL": "redis://localhost/abc"}, ["tempotask.E004"]),
        ({"REDIS_URL": 6379}, ["tempotask.E004"]),
        ({"QUEUES": {"emails": {"THREADS": 2}}}, ["tempotask.E005"]),
        ({"QUEUES": {"bad name": {}}}, ["tempotask.E005"]),
        ({"QUEUES": {"emails": {"CONCURRENCY": 0}}}, ["tempotask.E005"]),
        ({"CRON_BEAT_HEARTBEAT": 0.1}, ["tempotask.E003"]),
        ({"CRON_BEAT_HEARTBEAT": "10"}, ["tempotask.E003"]),
        ({"DEFAULT_TIMEOUT": 0}, ["tempotask.E003"]),
        ({"DEFAULT_TIMEOUT": "30"}, ["tempotask.E003"]),
        ({"TIMEOUT_GRACE": 0}, ["tempotask.E003"]),
        ({"QUEUES": {"emails": {"TIMEOUT": -5}}}, ["tempotask.E005"]),
        ({"QUEUES": {"emails": {"TIMEOUT": "60"}}}, ["tempotask.E005"]),
    ],
)
def test_validation_reports_each_problem_with_an_id(raw, expected):
    assert ids(raw) == expected


def test_unknown_key_suggests_the_close_one():
    [(check_id, _message, hint)] = validate({"redis_url": "redis://x"})
    assert check_id == "tempotask.E002" and "'REDIS_URL'" in hint


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://user:pw@host:6380/2", "unix:///tmp/redis.sock?db=1"]
)
def test_accepted_urls(url):
    assert validate({"REDIS_URL": url}) == []


def test_manage_check_reports_bad_settings():
    with override_settings(TEMPOTASK={"CONCURRENCY": -1, "TYPO": 1}):
        errors = [e for e in run_checks() if e.id.startswith("tempotask.")]
    assert sorted(e.id for e in errors) == ["tempotask.E002", "tempotask.E003"]


def test_manage_check_reports_unimportable_context():
    with override_settings(TEMPOTASK={"CONTEXT": "nowhere.to.be.found"}):
        errors = [e for e in run_checks() if e.id.startswith("tempotask.")]
    assert [e.id for e in errors] == ["tempotask.E006"]


def test_clean_settings_pass_the_checks():
    assert [e for e in run_checks() if e.id.startswith("tempotask.")] == []


def test_get_settings_raises_configuration_error_and_is_reset_on_change():
    with override_settings(TEMPOTASK={"ATTEMPTS": 0}), pytest.raises(ConfigurationError, match="ATTEMPTS"):
        get_settings()
    with override_settings(TEMPOTASK={"ATTEMPTS": 4}):
        assert get_settings().attempts == 4
    assert get_settings().attempts == 1


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:s3cret@host/1", "rediss://user:***@host/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        # The userinfo ends at the last "@": a password may hold "@" (and ":", "/", "#").
        ("redis://:p@ss@h", "redis://:***@h"),
        ("redis://user:p@ss:w/o#rd@h:6379/2", "redis://user:***@h:6379/2"),
        # A username alone is no secret.
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://user:@host/0", "redis://user:***@host/0"),
        # redis-py reads a password from the query string too, with its name decoded.
        ("redis://host/0?password=s3cret", "redis://host/0?password=***"),
        (
            "redis://host/0?db=1&password=s3cret&ssl_cert_reqs=none",
            "redis://host/0?db=1&password=***&ssl_cert_reqs=none",
        ),
        ("redis://host/0?PASSWORD=s3cret#x", "redis://host/0?PASSWORD=***#x"),
        ("redis://host/0?pass%77ord=s3cret", "redis://host/0?pass%77ord=***"),
        ("redis://u:a@h/0?password=b&password=c", "redis://u:***@h/0?password=***&password=***"),
        ("redis://host/0?not_password=1&passwords=2", "redis://host/0?not_password=1&passwords=2"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        ("unix:///run/user@1000/redis.sock", "unix:///run/user@1000/redis.sock"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_password_is_masked_in_urls_and_errors():
    assert mask_url(None) is None  # type: ignore[arg-type]  - a bad setting is reported, not crashed on
    for url in (
        "redis://:s3cret@host:badport/0",
        "redis://:s3cret@x@host:badport/0",
        "redis://h:bad/0?password=s3cret",
    ):
        problems = validate({"REDIS_URL": url})
        assert problems and all("s3cret" not in message for _, message, _ in problems), url
    assert "s3cret" not in build_settings({"REDIS_URL": "redis://:s3cret@h/0"}).safe_redis_url


def test_optimise_uses_the_next_database():
    client = make_client(build_settings({"REDIS_URL": "redis://localhost:6379/3", "OPTIMISE": True}))
    assert client.connection_pool.connection_kwargs["db"] == 4
    client = make_client(build_settings({"REDIS_URL": "redis://localhost:6379/3"}))
    assert client.connection_pool.connection_kwargs["db"] == 3


def test_per_queue_overrides():
    settings = build_settings({"CONCURRENCY": 2, "QUEUES": {"emails": {"CONCURRENCY": 8}}})
    assert settings.for_queue("emails").concurrency == 8
    assert settings.for_queue("other").concurrency == 2


def readme_settings_rows() -> list[tuple[str, str, str]]:
    """The (key, default, meaning) rows of the Settings table of docs/reference.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "reference.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        found = re.fullmatch(r"\| `([A-Z_]+)` \| `(.*?)` \| (.*) \|", line)
        if found:
            rows.append(found.groups())
    return rows


def test_the_reference_documents_exactly_the_settings_table():
    expected = [(s.key, f'"{s.default}"' if isinstance(s.default, str) else repr(s.default), s.doc) for s in SETTINGS]
    assert readme_settings_rows() == expected


def test_settings_has_one_attribute_per_key_the_engine_reads():
    attributes = {f.name for f in dataclasses.fields(Settings)}
    assert attributes == {s.attribute for s in SETTINGS if s.validator is not None}
    assert {s.key: s.default for s in SETTINGS} == DEFAULTS


def test_a_queue_timeout_overrides_default_timeout():
    settings = build_settings({"DEFAULT_TIMEOUT": 30, "QUEUES": {"emails": {"TIMEOUT": 5}, "bulk": {"TIMEOUT": None}}})
    assert settings.for_queue("emails").timeout == 5
    assert settings.for_queue("bulk").timeout is None  # no limit there
    assert settings.for_queue("other").timeout == 30
    assert build_settings({}).for_queue("other").timeout is None


@pytest.mark.parametrize(
    ("overrides", "warned"),
    [
        ({"STALLED_TIMEOUT": 6, "TIMEOUT_GRACE": 5}, True),
        ({"STALLED_TIMEOUT": 10, "TIMEOUT_GRACE": 5}, True),
        ({"STALLED_TIMEOUT": 11, "TIMEOUT_GRACE": 5}, False),
        ({"STALLED_TIMEOUT": 2, "TIMEOUT_GRACE": 0.5}, False),
    ],
)
def test_a_grace_that_outlasts_half_the_lease_is_warned_about(overrides, warned):
    # Leases are not renewed past a job's deadline: a hung handler stopped only after TIMEOUT_GRACE
    # could meanwhile be taken over by another worker and run twice at once.
    with override_settings(TEMPOTASK=overrides):
        found = [e for e in run_checks() if e.id.startswith("tempotask.")]
    assert [(e.id, e.level) for e in found] == ([("tempotask.W001", checks.WARNING)] if warned else [])
    if warned:
        assert "TIMEOUT_GRACE" in found[0].msg and "STALLED_TIMEOUT" in found[0].hint
