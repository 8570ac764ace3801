"""Starting the processes under test and reading what they cost (CPU time, peak RSS) from the kernel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def env(redis_url: str, tempotask: str = "{}") -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "PYTHONPATH": str(ROOT),
        "BENCH_REDIS_URL": redis_url,
        "BENCH_TEMPOTASK": tempotask,
    }


# How often the peak resident set of a process under test is read, seconds.
RSS_POLL = 0.02


@dataclass
class Finished:
    code: int
    peak_rss_mib: float  # largest peak resident set (VmHWM) of the process or any of its children
    cpu_seconds: float  # of the process and its waited-for children


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return children


@dataclass
class Usage:
    """Resources a process tree used so far: CPU seconds (user + system), the system part, and
    context switches (voluntary and not) summed over its threads."""

    cpu: float = 0.0
    system: float = 0.0
    switches: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu + other.cpu, self.system + other.system, self.switches + other.switches)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu - other.cpu, self.system - other.system, self.switches - other.switches)


def _usage(pid: int) -> Usage:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return Usage()
    user, system = int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
    # A thread's switches are its own (the process's status shows its main thread's): sum them.
    switches = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            status = (task / "status").read_text()
            switches += sum(int(n) for n in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.M))
    except OSError:
        pass
    return Usage(user + system, system, switches)


def _peak_rss_kib(pid: int) -> int:
    """VmHWM of ``pid`` and of its direct children (the supervisor's workers), the largest."""
    peak = 0
    for one in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            peak = max(peak, int(match.group(1)))
    return peak


class Process:
    """A child process whose exit status and resource usage we collect ourselves (os.wait4)."""

    def __init__(self, args: list[str], redis_url: str, log: Path, tempotask: str = "{}") -> None:
        self.args = args
        self.started = time.time()
        with open(log, "ab") as out:  # a file, not a pipe: a full pipe would block the child
            self.popen = subprocess.Popen(args, env=env(redis_url, tempotask), cwd=ROOT, stdout=out, stderr=out)
        self.pid = self.popen.pid
        # ru_maxrss from wait4 would count the benchmark's own memory (copied at fork): read VmHWM instead.
        self.peak_rss_kib = 0
        self._watch = threading.Thread(target=self._watch_rss, daemon=True)
        self._watch.start()

    def _watch_rss(self) -> None:
        while self.popen.returncode is None:
            self.peak_rss_kib = max(self.peak_rss_kib, _peak_rss_kib(self.pid))
            time.sleep(RSS_POLL)

    def usage(self) -> Usage:
        """CPU time and context switches so far of the process and its direct children (--processes)."""
        return sum((_usage(pid) for pid in [self.pid, *_children(self.pid)]), Usage())

    def alive(self) -> bool:
        """True until the process exits (read from /proc: a zombie counts as exited)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def stop(self) -> None:
        # Not popen.poll(): it would reap the process, and wait() needs to reap it with os.wait4.
        if self.popen.returncode is None:
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float = 120.0) -> Finished:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                return Finished(self.popen.returncode, self.peak_rss_kib / 1024, cpu)
            if time.monotonic() > deadline:
                self.popen.kill()
                raise RuntimeError(f"{' '.join(self.args)} did not exit within {timeout}s")
            time.sleep(0.01)


def runworkers(redis_url: str, log: Path, *options: str, tempotask: str = "{}") -> Process:
    args = [sys.executable, "-m", "django", "runworkers", "--queues", "bench", *options]
    return Process(args, redis_url, log, tempotask)


def django_command(redis_url: str, log: Path, command: str, *options: str) -> Process:
    return Process([sys.executable, "-m", "django", command, *options], redis_url, log)


def ceiling_consumer(redis_url: str, log: Path, mode: str, total: int) -> Process:
    return Process([sys.executable, "-m", "bench.ceiling", mode, redis_url, str(total)], redis_url, log)
