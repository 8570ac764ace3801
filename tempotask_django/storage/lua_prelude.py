"""Each script gets only the part of the Lua prelude it uses.

The prelude (lua/lib.lua, then lua/limits.lua) is a list of top-level ``local`` statements: its
functions, the K and DECLARED tables, constants. Redis runs a script's whole text on every call, so
every ``local function`` in it makes a closure each time: the full prelude costs Redis about 7 µs
per call whether the script uses it or not. Sending each script only the statements it names, and
those they name in turn, halves that for most scripts (enqueue, complete, trim).

The prelude's layout, which this relies on and tests/test_lua_prelude.py checks: every top-level
statement starts at column 0 with ``local``; what follows it up to the next such line belongs to it
(a function's body, a table's fields, the loop that fills the table declared just above).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Comments and string literals are skipped; a name in them is no use of it.
_TOKENS = re.compile(r"--[^\n]*|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|([A-Za-z_]\w*)")
_STATEMENT_START = re.compile(r"(?m)^(?=local )")
_DECLARED_NAMES = re.compile(r"local\s+(?:function\s+([A-Za-z_]\w*)|([A-Za-z_][\w\s,]*?)\s*(?:=|$))")


@dataclass(frozen=True)
class Statement:
    """One top-level statement of the prelude: its text, the locals it declares, the names it uses."""

    text: str
    declares: frozenset[str]
    uses: frozenset[str]


def names_used(code: str) -> set[str]:
    """Every name in ``code``, outside comments and string literals."""
    return {match[1] for match in _TOKENS.finditer(code) if match[1]}


@functools.lru_cache(maxsize=4)
def statements(prelude: str) -> tuple[Statement, ...]:
    """The prelude cut into its top-level statements, in order (text before the first is kept as one
    that declares nothing: the header comment). Cut once per prelude text: every script asks."""
    found = []
    for text in _STATEMENT_START.split(prelude):
        if not text:
            continue
        declares: frozenset[str] = frozenset()
        head = _DECLARED_NAMES.match(text.split("\n", 1)[0])
        if head:
            names = head[1] or head[2]
            declares = frozenset(name.strip() for name in names.split(",") if name.strip())
        found.append(Statement(text, declares, frozenset(names_used(text)) - declares))
    return tuple(found)


def prelude_for(prelude: str, code: str) -> str:
    """The statements of ``prelude`` that ``code`` uses, directly or through each other, in order."""
    parts = statements(prelude)
    # A statement that declares nothing (the header comment) is kept: it costs nothing, and a
    # statement the declaration pattern could not read stays, with what it uses.
    kept = [not part.declares for part in parts]
    wanted = names_used(code).union(*(part.uses for part in parts if not part.declares))
    changed = True
    while changed:
        changed = False
        for i, part in enumerate(parts):
            if not kept[i] and part.declares & wanted:
                kept[i] = True
                wanted |= part.uses
                changed = True
    return "".join(part.text for part, keep in zip(parts, kept, strict=True) if keep)
