"""``runworkers --reload`` and ``runcron --reload``: real processes restarted by a code change.

The processes load a settings module written to the test's directory; touching it is the code
change. A restart must be a clean stop (the running job finishes first, once), and Ctrl-C must stop
the command for good, its child included.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tempotask_django import JobStatus, get_job
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def start(workers, tmp_path: Path, command: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    settings = tmp_path / "reload_settings.py"
    settings.write_text("from tests.settings import *  # noqa: F403\n")
    process = workers.start(
        "--reload",
        *args,
        command=command,
        settings_module="reload_settings",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
    )
    return process, settings


def touch_until(path: Path, restarted, timeout: float = 30) -> None:
    """Change the file's mtime every half second until ``restarted()``: the watcher's first look at the
    files may come after the first change (then that mtime is what it compares with)."""
    deadline = time.monotonic() + timeout
    step = 0
    while not restarted():
        assert time.monotonic() < deadline, "no restart after the code change"
        step += 1
        later = time.time() + 5 + step  # a new mtime whatever the file system's resolution
        os.utime(path, (later, later))
        time.sleep(0.5)


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"reload: started process (\d+)", output)]


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> int:
    process.send_signal(signum)
    return process.wait(timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def reaped(workers):
    """Children of a --reload parent run in their own process group: kill any left at the end."""
    yield
    for process in workers.processes:
        for pid in started_pids(workers.output(process)):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_code_change_restarts_the_workers_after_the_running_job_finishes(workers, ledger, tmp_path, reaped):
    process, settings = start(workers, tmp_path, "runworkers", "--queues", "slow", "default")
    output = lambda: workers.output(process)  # noqa: E731
    wait_until(lambda: "worker" in output() and "started: queues" in output(), timeout=30, message="a worker")
    job_id = tasks.slow.enqueue({"seconds": 2})
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")

    touch_until(settings, lambda: "restarting after a clean stop" in output())
    wait_until(lambda: len(started_pids(output())) == 2, timeout=30, message="a second process")
    first, second = started_pids(output())
    assert first != second and not alive(first)
    assert "restarting after a clean stop" in output()
    assert "stopped after 1 jobs" in output()  # the first process finished the job before exiting
    assert len(ledger.entries("start")) == 1 and len(ledger.entries("end")) == 1  # once, to its end
    assert get_job(job_id).status == JobStatus.COMPLETED

    wait_until(lambda: output().count("started: queues") == 2, timeout=30, message="the new worker")
    again = tasks.record.enqueue({"n": 1})
    wait_until(lambda: get_job(again).status == JobStatus.COMPLETED, timeout=30, message="the new worker's job")

    assert stop(process, signal.SIGINT) == 0, output()  # Ctrl-C: a clean stop, no restart
    assert not alive(second) and len(started_pids(output())) == 2


def test_ctrl_c_lets_the_running_job_finish_and_stops_for_good(workers, ledger, tmp_path, reaped):
    process, _ = start(workers, tmp_path, "runworkers", "--queues", "slow")
    tasks.slow.enqueue({"seconds": 2})
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")
    assert stop(process, signal.SIGINT) == 0, workers.output(process)
    assert len(ledger.entries("end")) == 1  # finished, not cut short by the stop
    (child,) = started_pids(workers.output(process))
    assert not alive(child)


def test_a_second_ctrl_c_exits_at_once(workers, ledger, tmp_path, reaped):
    process, _ = start(workers, tmp_path, "runworkers", "--queues", "slow")
    tasks.slow.enqueue({"seconds": 30})
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert stop(process, signal.SIGINT) == 1, workers.output(process)
    assert "second stop signal: exiting now" in workers.output(process)
    assert not ledger.entries("end")


def test_with_processes_a_code_change_replaces_the_supervisor_and_its_children(workers, ledger, tmp_path, reaped):
    process, settings = start(workers, tmp_path, "runworkers", "--queues", "slow", "--processes", "2")
    output = lambda: workers.output(process)  # noqa: E731
    wait_until(lambda: output().count("started: queues") == 2, timeout=30, message="two workers")
    tasks.slow.enqueue({"seconds": 2})
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")
    touch_until(settings, lambda: "restarting after a clean stop" in output())
    wait_until(lambda: output().count("started: queues") == 4, timeout=40, message="two new workers")
    assert len(ledger.entries("start")) == 1 and len(ledger.entries("end")) == 1
    assert stop(process) == 0, output()


def test_a_code_change_restarts_the_cron_beat(workers, tmp_path, reaped):
    process, settings = start(workers, tmp_path, "runcron")
    output = lambda: workers.output(process)  # noqa: E731
    wait_until(lambda: "cron beat started" in output(), timeout=30, message="the beat")
    touch_until(settings, lambda: "restarting after a clean stop" in output())
    wait_until(lambda: output().count("cron beat started") == 2, timeout=30, message="a new beat")
    assert output().count("cron beat stopped") == 1
    assert stop(process) == 0, output()
    first, second = started_pids(output())
    assert not alive(first) and not alive(second)


def test_a_module_that_no_longer_imports_waits_for_the_fix(workers, ledger, tmp_path, reaped):
    process, settings = start(workers, tmp_path, "runworkers", "--queues", "default")
    output = lambda: workers.output(process)  # noqa: E731
    wait_until(lambda: "started: queues" in output(), timeout=30, message="a worker")
    good = settings.read_text()
    settings.write_text(good + "def broken(:\n")
    touch_until(settings, lambda: "restarting after a clean stop" in output())
    wait_until(lambda: "waiting for a change to start again" in output(), timeout=30, message="the failed start")
    assert "SyntaxError" in output() and process.poll() is None  # the command goes on

    settings.write_text(good)
    touch_until(settings, lambda: output().count("started: queues") == 2)
    job_id = tasks.record.enqueue({"n": 1})
    wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, timeout=30, message="the job")
    assert stop(process, signal.SIGINT) == 0, output()
