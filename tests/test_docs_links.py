"""Every relative link of README.md and docs/*.md leads to a file that exists, and to a heading of
it when it names one (anchors as GitHub makes them from headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs_samples import PAGES, ROOT

# Linked from the README's "Documentation" list before they are written.
ANNOUNCED: set[str] = set()
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors: the heading in lower case, without punctuation, spaces made hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCED.sub("", page.read_text()), re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


def links(page: Path) -> list[str]:
    return [link for link in LINK.findall(FENCED.sub("", page.read_text())) if "://" not in link]


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_link_leads_somewhere(page):
    broken = []
    for link in links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        relative = str(target.relative_to(ROOT)) if target.is_relative_to(ROOT) else str(target)
        if relative in ANNOUNCED:
            continue
        missing_heading = target.exists() and anchor and target.suffix == ".md" and anchor not in anchors(target)
        if not target.exists() or missing_heading:
            broken.append(link)
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_links_every_page_of_docs():
    readme = {str((ROOT / link.partition("#")[0]).resolve().relative_to(ROOT)) for link in links(ROOT / "README.md")}
    pages = {str(page.relative_to(ROOT)) for page in (ROOT / "docs").glob("*.md")}
    assert pages <= readme
