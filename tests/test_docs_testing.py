"""docs/testing.md (marked ``<!-- docs-test: pytest-project -->``): every Python block of the guide is a file
of a small project, and its tests pass. tests/test_docs.py checks the rest of the documentation.

Each block starts with a comment naming its path (``# myapp/tests/test_welcome.py``). The blocks are
written to a temporary directory and run by pytest in a subprocess, on the test project's settings
and the test Redis (the Redis examples need it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PATH_COMMENT = re.compile(r"# ([\w/]+\.py)\n")


def guide_files() -> dict[str, str]:
    """Path -> text of every Python block of the guide; a block without a path fails the test."""
    files = {}
    for block in BLOCK.findall(GUIDE.read_text()):
        found = PATH_COMMENT.match(block)
        assert found, f"a Python block of {GUIDE.name} does not start with its path:\n{block}"
        files[found.group(1)] = block
    return files


def test_every_block_names_its_file_and_the_guide_tests_both_ways():
    files = guide_files()
    assert "myapp/tasks.py" in files
    text = "\n".join(files.values())
    assert "tempotask_immediate" in text and "immediate_mode()" in text
    assert "tempotask_keyspace" in text and "run_jobs(" in text


def test_the_guides_examples_pass(redis_client, tmp_path):
    files = guide_files()
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for package in Path(relative).parents[:-1]:  # every folder but the root is a package
            (tmp_path / package / "__init__.py").touch()
    (tmp_path / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = tests.settings\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "TEMPOTASK_TEST_REDIS_URL": settings.TEMPOTASK["REDIS_URL"],
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "myapp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tests = sum(len(re.findall(r"^    def test_|^def test_", text, re.MULTILINE)) for text in files.values())
    assert tests == 5
    assert run.returncode == 0 and f"{tests} passed" in run.stdout, run.stdout + run.stderr
