"""The errors that mean "Redis is unreachable for now" load with every redis-py that pyproject.toml allows."""

import subprocess
import sys

import redis


def test_the_package_imports_with_a_redis_py_older_than_8_2():
    # redis-py before 8.2 has no RedisClusterUnreachableError; CI also runs the Redis 6.2 share of the
    # suite on the oldest redis-py allowed (.ci/run).
    code = (
        "import redis.exceptions\n"
        'vars(redis.exceptions).pop("RedisClusterUnreachableError", None)\n'
        "import tempotask_django\n"
        "from tempotask_django.storage.outage import REDIS_ERRORS\n"
        "assert redis.exceptions.ClusterDownError in REDIS_ERRORS\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_an_unreachable_cluster_is_an_outage_where_redis_py_names_it():
    from tempotask_django.storage.outage import REDIS_ERRORS

    named = getattr(redis.exceptions, "RedisClusterUnreachableError", None)
    assert named is None or named in REDIS_ERRORS
    assert redis.ConnectionError in REDIS_ERRORS
