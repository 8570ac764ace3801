"""Every code sample of README.md and docs/*.md runs (or, for commands, is parsed and run where it
only reads), one page per process: see tests/docs_samples.py for the conventions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.docs_samples import PAGES, ROOT, blocks, is_project

pytestmark = pytest.mark.redis

# Samples that cannot run here, each marked with its reason; keep them few.
MOST_SKIPS = 3
MOST_SETUPS = 3


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_the_samples_of_the_page_run(redis_client, page):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": settings.TEMPOTASK["REDIS_URL"],
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    counts = json.loads(run.stdout.splitlines()[-1])
    code = [block for block in blocks(page) if block.language not in ("text", "")]
    ran = counts["python"] + counts["commands"] + counts["skipped"]
    assert ran >= 1 or not code or is_project(page), counts


def test_exceptions_are_few_and_give_their_reason():
    every = [block for page in PAGES for block in blocks(page)]
    skips = [block for block in every if block.skip is not None]
    assert len(skips) <= MOST_SKIPS, [block.where for block in skips]
    assert all(block.skip.strip() for block in skips)
    assert len([block for block in every if block.setup]) <= MOST_SETUPS


def test_the_project_pages_are_the_ones_run_with_pytest():
    assert [page.name for page in PAGES if is_project(page)] == ["testing.md"]


@pytest.mark.parametrize(
    ("sample", "error"),
    [
        ("```python\nundefined_name\n```\n", "NameError"),
        ('```python\n# settings.py\nTEMPOTASK = {"CONCURENCY": 2}\n```\n', "TEMPOTASK is refused"),
        ("```sh\npython manage.py runworkers --no-such-option\n```\n", "unrecognized arguments"),
        ("```sh\npython manage.py tempotask pause\n```\n", "required"),
        ('```sh\npip install "tempotask-django[nope]"\n```\n', "no extra 'nope'"),
        ("```sh\nrm -rf build\n```\n", "a command the documentation test does not know"),
        ("```yaml\ncommand: [python, manage.py, runcron, --bad]\n```\n", "unrecognized arguments"),
        ("```yaml\nkey: [unclosed\n```\n", "yaml"),
        ("```js\nconsole.log(1)\n```\n", "unknown language 'js'"),
    ],
)
def test_a_broken_sample_fails_the_page(redis_client, tmp_path, sample, error):
    page = tmp_path / "broken.md"
    page.write_text(f"# A page\n\n{sample}")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": settings.TEMPOTASK["REDIS_URL"],
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and error in run.stderr, run.stdout + run.stderr
