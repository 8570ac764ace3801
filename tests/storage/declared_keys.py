"""A checker for the scripting contract: every key a script touches is declared in KEYS.

``checked_source(name)`` is a script's text behind a prelude that shadows ``redis`` with a table
whose ``call`` and ``pcall`` refuse a command naming a key the call did not declare (the script
stops with an error). Installed for a test by ``strict_scripts``: every script the store runs then
goes through the check, on the real Redis, whatever path led to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tempotask_django.storage import scripts

# Where the keys of each command used by the scripts are (Redis's own key specs, for these commands).
CHECKER = r"""
local redis = (function(real)
  local declared = {}
  for _, key in ipairs(KEYS) do declared[key] = true end
  local NO_KEYS = {TIME = true, PUBLISH = true}
  local ALL_KEYS = {EXISTS = true, UNLINK = true, DEL = true, RENAME = true}
  local SECOND = {XGROUP = true, XINFO = true}
  local function keys_of(args)
    local name = string.upper(tostring(args[1]))
    if NO_KEYS[name] then return {} end
    if ALL_KEYS[name] then return {unpack(args, 2)} end
    if SECOND[name] then return {args[3]} end
    if name == 'XREADGROUP' or name == 'XREAD' then
      for i = 2, #args do
        if string.upper(tostring(args[i])) == 'STREAMS' then
          local n = (#args - i) / 2
          return {unpack(args, i + 1, i + n)}
        end
      end
    end
    return {args[2]}
  end
  local function check(...)
    for _, key in ipairs(keys_of({...})) do
      if not declared[key] then
        error('undeclared key ' .. tostring(key) .. ' in ' .. tostring((...)), 3)
      end
    end
  end
  local checked = {
    call = function(...) check(...) return real.call(...) end,
    pcall = function(...) check(...) return real.pcall(...) end,
  }
  return setmetatable(checked, {__index = real})
end)(redis)
"""

_original = scripts.script_source


def checked_source(name: str) -> str:
    return CHECKER + _original(name)


@contextmanager
def strict_scripts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run every script through the checker (stores built from here on load the checked text)."""
    from tempotask_django.storage.connection import reset_default_store

    monkeypatch.setattr(scripts, "script_source", checked_source)
    reset_default_store()
    yield
    reset_default_store()
