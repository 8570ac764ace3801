"""Stop signals at any instant: a handler only records the signal; what it means is done outside it.

Each probe is a real process (``python -c``) whose main thread holds a lock the old handlers took
(the worker's running-jobs lock, the cron beat's stop event) at the instant it signals itself, so
a handler that takes that lock deadlocks the process for good.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tempotask_django.storage.connection import get_default_store
from tests.conftest import ROOT, _test_url
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER_PROBE = """
    import os, signal, sys, time
    import django
    django.setup()
    from tempotask_django.management.commands import runworkers
    from tempotask_django.worker import Worker

    real_run = Worker.run

    def run_after_signals_under_the_lock(self):
        with self.running._lock:  # held by the main thread while it starts a job or renews leases
            for _ in range(int(sys.argv[1])):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # the handler runs now, in this thread, the lock held
        print("lock released", flush=True)
        return real_run(self)

    Worker.run = run_after_signals_under_the_lock
    sys.exit(runworkers.run_worker(["default"], 2, False, None, with_cron=sys.argv[2] == "cron"))
"""

BEAT_PROBE = """
    import os, signal, sys, time
    import django
    django.setup()
    from django.core.management import call_command
    from tempotask_django.cron import CronBeat

    real_run = CronBeat.run

    def run_after_a_signal_under_the_lock(self):
        with self._stopping._cond:  # the lock Event.set() takes: held while the beat waits or checks
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs now, in this thread, the lock held
        print("lock released", flush=True)
        return real_run(self)

    CronBeat.run = run_after_a_signal_under_the_lock
    call_command("runcron")
"""


def _probe(code: str, *args: str, overrides: dict | None = None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": _test_url(),
        "TEMPOTASK_TEST_OVERRIDES": json.dumps(overrides or {}),
        "TEMPOTASK_TEST_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the process hung after the signal (deadlocked in its handler?):\n{output}")
    return process.returncode, output


@pytest.mark.parametrize("mode", ["worker", "cron"], ids=["runworkers", "runworkers --with-cron"])
def test_sigterm_while_the_worker_holds_its_lock_stops_it_cleanly(redis_client, mode):
    code, output = _finish(_probe(WORKER_PROBE, "1", mode), timeout=20)
    assert code == 0, output
    assert "lock released" in output and "stopping" in output and "stopped after 0 jobs" in output


def test_a_second_sigterm_while_the_worker_holds_its_lock_forces_the_exit(redis_client):
    code, output = _finish(_probe(WORKER_PROBE, "2", "worker"), timeout=20)
    assert code == 1, output
    assert "second stop signal: exiting now" in output


def test_sigterm_while_the_cron_beat_holds_its_stop_lock_stops_it_cleanly(redis_client):
    code, output = _finish(_probe(BEAT_PROBE), timeout=20)
    assert code == 0, output
    assert "lock released" in output and "cron beat stopped" in output


def test_an_idle_worker_stops_within_about_a_second(workers):
    """The idle wait blocks on Redis; a stop requested meanwhile is acted on when it returns."""
    process = workers.start()
    wait_until(lambda: get_default_store().inspect.list_workers(), timeout=30, message="the worker's first heartbeat")
    time.sleep(0.5)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, workers.output(process)
    assert time.monotonic() - started < 1.6, workers.output(process)


def test_a_second_sigterm_to_the_supervisor_kills_its_children_at_once(workers, ledger):
    tasks.slow.enqueue({"seconds": 30})
    process = workers.start("--queues", "slow", "--processes", "2")
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 1, workers.output(process)
    assert time.monotonic() - started < 5  # not SHUTDOWN_TIMEOUT (10 s), nor the job's 30 s
    assert "second stop signal: killing worker processes" in workers.output(process)
    assert not ledger.entries("end")


def test_ctrl_c_in_a_terminal_stops_a_pool_of_workers_gracefully(workers, ledger):
    """A terminal's Ctrl-C signals its whole foreground process group: the children must not take
    it together with the supervisor's forwarded SIGTERM as two signals (which cuts running jobs)."""
    job_id = tasks.slow.enqueue({"seconds": 2})
    process = workers.start("--queues", "slow", "--processes", "2", new_session=True)
    wait_until(lambda: ledger.entries("start"), timeout=30, message="the job to start")
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does
    assert process.wait(timeout=15) == 0, workers.output(process)
    assert "second stop signal" not in workers.output(process)
    assert [entry["job"] for entry in ledger.entries("end")] == [job_id]  # not cut short


def test_worker_processes_stop_when_their_supervisor_is_killed(workers, ledger):
    process = workers.start("--queues", "slow", "--processes", "2")
    wait_until(lambda: len(get_default_store().inspect.list_workers()) == 2, timeout=30, message="two workers")
    children = [int(pid) for pid in subprocess.check_output(["pgrep", "-P", str(process.pid)], text=True).split()]
    assert len(children) == 2
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout=10, message="the orphaned workers to stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A stopped child of a dead parent is reaped by init; until then it is a zombie.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"
