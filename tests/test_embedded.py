"""``python -m tempotask_django.embedded``: the wrapper that ./run-demo and ./run-tests start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import _test_url

# The command run under the wrapper: says it is ready, then waits; on SIGTERM it writes a mark and
# exits 3, so the test sees both that the signal reached it and that its exit code came back.
CHILD = """
import signal, sys, time
from pathlib import Path
def stop(*_):
    Path(sys.argv[1]).write_text("stopped")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.redis
def test_sigterm_to_the_wrapper_reaches_its_command_when_redis_already_answers(redis_server, tmp_path):
    mark = tmp_path / "mark"
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tempotask_django.embedded",
            "--url",
            _test_url(),
            "--",
            sys.executable,
            "-c",
            CHILD,
            str(mark),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert wrapper.stdout.readline().strip() == "ready"
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=10) == 3
        assert mark.read_text() == "stopped"
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
