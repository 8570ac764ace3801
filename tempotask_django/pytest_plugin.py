"""pytest fixtures for projects that use tempotask (registered through the ``pytest11`` entry point).

- ``tempotask_keyspace``: the test runs with a KEY_PREFIX of its own on your Redis; its keys are
  deleted after it. Yields the prefix.
- ``tempotask_immediate``: the test runs in immediate mode (``TEMPOTASK["MODE"] = "immediate"``) on
  an empty in-memory Redis: every enqueue runs its job at once, no Redis needed.

Loading the plugin defines fixtures and nothing else: no Django setting is read until a test asks
for one of them, so projects that use neither are not affected. See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tempotask_django import testing


@pytest.fixture
def tempotask_keyspace() -> Iterator[str]:
    """A KEY_PREFIX of the test's own (the configured one plus a random suffix), cleaned up after it."""
    with testing.isolated_keyspace() as prefix:
        yield prefix


@pytest.fixture
def tempotask_immediate() -> Iterator[None]:
    """Immediate mode on an empty in-memory Redis for the test."""
    with testing.immediate_mode():
        yield
