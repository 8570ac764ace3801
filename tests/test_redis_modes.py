"""REDIS_MODE, SENTINELS and SENTINEL_MASTER: what ``manage.py check`` refuses, and the clients
built for sentinel mode."""

from __future__ import annotations

import os

import pytest
from django.core.checks import run_checks
from redis.cluster import RedisCluster
from redis.sentinel import SentinelConnectionPool

from tempotask_django.conf import build_settings, get_settings, parse_sentinel, validate
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.storage.connection import FailoverConnection, FailoverSSLConnection, make_client

CLUSTER = {"REDIS_MODE": "cluster", "REDIS_URL": "rediss://:pw@node1.example.com:7000/0"}
SENTINEL = {"REDIS_MODE": "sentinel", "SENTINELS": ["127.0.0.1:26379", "[::1]:26380"], "SENTINEL_MASTER": "mymaster"}


def ids(raw) -> list[str]:
    return [problem[0] for problem in validate(raw)]


def test_standalone_is_the_default_and_a_full_sentinel_setting_is_valid():
    assert build_settings({}).redis_mode == "standalone"
    settings = build_settings(SENTINEL)
    assert (settings.redis_mode, settings.sentinel_master) == ("sentinel", "mymaster")
    assert settings.sentinels == (("127.0.0.1", 26379), ("::1", 26380))


@pytest.mark.parametrize(
    ("raw", "expected", "says"),
    [
        ({"REDIS_MODE": "sentinel", "SENTINEL_MASTER": "m"}, ["tempotask.E011"], "SENTINELS names no sentinel"),
        ({"REDIS_MODE": "sentinel", "SENTINELS": ["h:1"]}, ["tempotask.E011"], "SENTINEL_MASTER"),
        ({**SENTINEL, "REDIS_URL": "unix:///tmp/r.sock"}, ["tempotask.E011"], "unix socket"),
        ({**SENTINEL, "SENTINELS": ["127.0.0.1"]}, ["tempotask.E012"], "'127.0.0.1'"),
        ({**SENTINEL, "SENTINELS": "h:26379"}, ["tempotask.E012"], "must be a list"),
        ({**SENTINEL, "SENTINELS": ["h:0", "h:70000", "h: 1", 5]}, ["tempotask.E012"], 'not "host:port"'),
        ({"SENTINELS": ["h:26379"]}, ["tempotask.E013"], 'Set "REDIS_MODE": "sentinel", or remove SENTINELS'),
        ({"REDIS_MODE": "standalone", "SENTINEL_MASTER": "m"}, ["tempotask.E013"], "SENTINEL_MASTER"),
        ({**CLUSTER, "OPTIMISE": True}, ["tempotask.E014"], 'Set "OPTIMISE": False'),
        ({**CLUSTER, "REDIS_URL": "redis://h:7000/2"}, ["tempotask.E014"], "database 2, but a Redis Cluster has"),
        ({**CLUSTER, "REDIS_URL": "redis://h:7000?db=1"}, ["tempotask.E014"], "End REDIS_URL with /0"),
        ({**CLUSTER, "REDIS_URL": "unix:///tmp/r.sock"}, ["tempotask.E014"], "names a startup node"),
        ({**CLUSTER, "SENTINEL_MASTER": "m"}, ["tempotask.E013"], "Remove SENTINEL_MASTER"),
        ({"REDIS_MODE": "Sentinel"}, ["tempotask.E003"], "one of ('standalone', 'cluster', 'sentinel')"),
        ({**SENTINEL, "SENTINEL_MASTER": ""}, ["tempotask.E003", "tempotask.E011"], "None or a name"),
    ],
)
def test_check_reports_a_wrong_combination_and_what_to_change(settings, raw, expected, says):
    assert ids(raw) == expected
    settings.TEMPOTASK = raw
    errors = [e for e in run_checks() if e.id.startswith("tempotask.")]
    assert [e.id for e in errors] == expected
    assert says in " ".join(f"{e.msg} {e.hint}" for e in errors)
    with pytest.raises(ConfigurationError):
        build_settings(raw)  # never a half-working client: cluster mode included


def test_cluster_mode_with_a_startup_node_on_database_0_is_valid():
    for url in ("redis://h:7000", "redis://h:7000/0", "rediss://user:pw@h:7000/0"):
        settings = build_settings({**CLUSTER, "REDIS_URL": url})
        assert settings.redis_mode == "cluster"


def test_parse_sentinel():
    assert parse_sentinel("redis-sentinel.local:26379") == ("redis-sentinel.local", 26379)
    assert parse_sentinel("[fe80::1]:5000") == ("fe80::1", 5000)
    assert [parse_sentinel(a) for a in ["h", "h:", ":1", "h:65536", "a:b:1", None]] == [None] * 6


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_sentinel_mode_builds_a_sentinel_pool_with_the_urls_password_database_and_tls(scheme):
    settings = build_settings({**SENTINEL, "REDIS_URL": f"{scheme}://user:s3cret@ignored-host:1/3", "OPTIMISE": True})
    client = make_client(settings)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert pool.connection_class is (FailoverSSLConnection if scheme == "rediss" else FailoverConnection)
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("user", "s3cret", 4)  # OPTIMISE: N+1
    assert "host" not in kwargs  # the sentinels name the master
    sentinels = pool.sentinel_manager.sentinels
    assert [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"]) for s in sentinels
    ] == [
        ("127.0.0.1", 26379),
        ("::1", 26380),
    ]
    assert all(s.connection_pool.connection_kwargs.get("password") is None for s in sentinels)


def test_logs_and_pages_name_the_master_and_the_sentinels_without_the_password():
    settings = build_settings({**SENTINEL, "REDIS_URL": "redis://:s3cret@localhost/2"})
    assert settings.safe_redis_url == (
        "master 'mymaster' of sentinels 127.0.0.1:26379,::1:26380 (redis://:***@localhost/2)"
    )


@pytest.mark.redis
def test_the_suite_runs_in_the_redis_mode_its_script_asked_for(store):
    """scripts/test-cluster and scripts/test-sentinel set TEMPOTASK_TEST_REDIS_MODE: the code under
    test then talks through that mode's client, never quietly to a plain server."""
    wanted = os.environ.get("TEMPOTASK_TEST_REDIS_MODE", "standalone")
    assert get_settings().redis_mode == wanted
    client = store.client
    if wanted == "cluster":
        assert isinstance(client, RedisCluster)
    elif wanted == "sentinel":
        assert isinstance(client.connection_pool, SentinelConnectionPool)
        assert client.ping()
    else:
        assert not isinstance(client.connection_pool, SentinelConnectionPool)
