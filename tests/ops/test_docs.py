"""docs/operations.md stays true: every command it shows parses, every health URL it shows is understood."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from django.test import Client

from tempotask_django.management.commands.tempotask import Command
from tempotask_django.ops.health import HealthOptions
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "operations.md").read_text()
# "$ python manage.py tempotask ..." in the console sessions.
SHOWN = [shlex.split(line)[3:] for line in re.findall(r"^\$ (python manage\.py tempotask .*)$", DOC, re.MULTILINE)]
# command: ["python", "manage.py", "tempotask", ...] in the Kubernetes examples.
PROBES = [json.loads(found)[3:] for found in re.findall(r'command: (\["python", "manage\.py", "tempotask".*\])', DOC)]
URLS = sorted(set(re.findall(r"(/tempotask/health/\?[^\s'`]+)", DOC)))


def test_the_doc_shows_commands_probes_and_urls():
    assert len(SHOWN) >= 10 and PROBES and len(URLS) >= 3


@pytest.mark.parametrize("argv", SHOWN + PROBES, ids=" ".join)
def test_every_command_shown_parses(argv):
    parser = Command().create_parser("manage.py", "tempotask")
    options = parser.parse_args(argv)
    assert options.action == argv[0]
    if options.action == "health":
        HealthOptions.parse(options.queue, options.max_waiting, options.max_age, options.skip)


@pytest.mark.redis
@pytest.mark.parametrize("url", URLS)
def test_every_health_url_shown_is_understood(store, url):
    assert Client().get(url).status_code in (200, 503)  # 400 would mean the doc shows a bad query
