"""The code samples of README.md and docs/*.md, as tests/test_docs.py runs them.

The conventions (also described in docs/internals.md, "Documentation samples"):

- A fence's language says what the block is. ``python`` blocks run. ``sh``, ``bash``, ``console``,
  ``ini``, ``yaml`` and ``procfile`` blocks hold commands: every ``manage.py`` command in them is
  parsed by that command's own parser, and run when it only reads (``tempotask stats``, ``health``,
  ``crons list``, ``migrate-keys``). In ``sh`` and ``bash`` every other command must be known:
  ``pip install`` names extras that exist, the repository's scripts and modules exist (the chaos
  suite's options are parsed). YAML parses. ``text`` (or no language) is not code: output,
  synopses, diagrams. Any other language is refused, so a new kind of sample gets a rule first.
- A Python block whose first line is a path comment (``# myapp/tasks.py``) is that file: written
  to a temporary project and imported, its names then available to the blocks after it. Its
  ``# settings.py`` is checked instead: its ``TEMPOTASK`` must pass the settings' validation, and it
  (with ``TASKS``) is applied for the rest of the page, on the test Redis. Other Python blocks run
  in one namespace per page, in order, like a shell session.
- ``<!-- docs-test: setup CODE -->`` just before a block runs CODE first (state the page does not
  show, such as a registered cron schedule); ``<!-- docs-test: skip REASON -->`` leaves a block
  out, with the reason. Both are kept few (the test counts them).
- A page holding ``<!-- docs-test: pytest-project -->`` is a small project whose Python blocks
  are its files, tests included: tests/test_docs_testing.py runs its tests with pytest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

RUN = {"python"}
COMMANDS = {"sh", "bash", "console", "ini", "yaml", "procfile"}
NOT_CODE = {"text", ""}
PROJECT_MARK = "<!-- docs-test: pytest-project -->"

FENCE = re.compile(
    r"(?:^<!-- docs-test: (?P<directive>skip|setup) (?P<argument>.*?) -->\n)?"
    r"^```(?P<language>[\w-]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
PATH_COMMENT = re.compile(r"# ([\w/]+\.py)\b")


@dataclass
class Block:
    page: Path
    line: int
    language: str
    body: str
    skip: str | None = None  # the reason
    setup: str | None = None  # code to run first

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    @property
    def path(self) -> str | None:
        """The file a Python block is, from its first line's path comment."""
        found = PATH_COMMENT.match(self.body)
        return found.group(1) if found else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        block = Block(page, text.count("\n", 0, match.start("language")) + 1, match["language"], match["body"])
        if match["directive"] == "skip":
            block.skip = match["argument"]
        elif match["directive"] == "setup":
            block.setup = match["argument"]
        found.append(block)
    return found


def is_project(page: Path) -> bool:
    """The page carries the mark on a line of its own (not quoted in a sentence)."""
    return f"\n{PROJECT_MARK}\n" in page.read_text()
