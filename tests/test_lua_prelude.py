"""The Lua prelude and the Python side agree on the queue keys every script gets first."""

import re
from importlib import resources

import pytest

from tempotask_django.storage.lua_prelude import names_used, statements
from tempotask_django.storage.scripts import QUEUE_KEYS, SCRIPT_NAMES, script_source


def test_the_prelude_counts_as_many_queue_keys_as_the_python_side_sends():
    source = script_source("claim")
    count = int(re.search(r"local QUEUE_KEY_COUNT = (\d+)", source).group(1))
    assert count == len(QUEUE_KEYS)
    table = re.search(r"local K = \{(.*?)\n\}", source, re.S).group(1)
    assert re.findall(r"(\w+) = KEYS\[(\d+)\]", table) == [(name, str(i)) for i, name in enumerate(QUEUE_KEYS, 1)]


# -- each script gets the part of the prelude it uses (storage/lua_prelude.py) ------------------------
def full_prelude() -> str:
    lua = resources.files("tempotask_django.storage") / "lua"
    return "\n".join((lua / part).read_text() for part in ("lib.lua", "limits.lua"))


def test_names_in_comments_and_strings_are_no_use():
    code = "local x = call('not_a_name') -- nor_this\nreturn y .. \"nor 'that'\" .. z"
    assert names_used(code) == {"local", "x", "call", "return", "y", "z"}


def test_every_top_level_statement_of_the_prelude_declares_what_it_defines():
    # The layout lua_prelude.py relies on: a statement that declares nothing would be sent to every
    # script, and a misread name would leave its users without it.
    parts = statements(full_prelude())
    assert not parts[0].declares and parts[0].text.startswith("--")  # the header comment
    assert all(part.declares for part in parts[1:])
    declared = [name for part in parts for name in part.declares]
    assert len(declared) == len(set(declared))
    assert {"K", "DECLARED", "need", "own_key", "NEEDED", "NEEDED_SEEN", "unpark_due"} <= set(declared)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_script_defines_every_prelude_local_it_uses(name):
    prelude_names = {name for part in statements(full_prelude()) for name in part.declares}
    source = script_source(name)
    defined = {name for part in statements(source.split("\nlocal function script_body()")[0]) for name in part.declares}
    assert names_used(source) & prelude_names <= defined


def test_a_script_gets_only_the_prelude_it_uses():
    assert "local function unpark_due" in script_source("claim")
    assert "local function unpark_due" not in script_source("enqueue")
    assert "local DECLARED = {}" in script_source("retry")  # used by once.lua, which ends every script
    assert len(script_source("trim")) < len(full_prelude())
