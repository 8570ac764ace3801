"""The Lua prelude and the Python side agree on the queue keys every script gets first."""

import re

from tempotask_django.storage.scripts import QUEUE_KEYS, script_source


def test_the_prelude_counts_as_many_queue_keys_as_the_python_side_sends():
    source = script_source("claim")
    count = int(re.search(r"local QUEUE_KEY_COUNT = (\d+)", source).group(1))
    assert count == len(QUEUE_KEYS)
    table = re.search(r"local K = \{(.*?)\n\}", source, re.S).group(1)
    assert re.findall(r"(\w+) = KEYS\[(\d+)\]", table) == [(name, str(i)) for i, name in enumerate(QUEUE_KEYS, 1)]
