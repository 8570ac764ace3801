"""Install the peers (each in its own virtualenv, or ``npm ci``) and measure them as tempotask is measured.

Per run, in this order: the ceiling and tempotask, then every peer and configuration. Each one gets
S1 (``--jobs`` enqueue calls, timed in the enqueuing process), S2 (those jobs drained by one worker
started afterwards: first job's start to the last job's body, as bench/scenarios.py times the
ceiling), the worker's peak RSS during S2, and S3 (an idle worker, probes at 200/s, enqueue to
start). A peer that fails to install or to run is reported with its error; the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench import body, ceiling, procs, scenarios
from bench.benchapp import tasks
from bench.peers.install import Skipped, install, tail
from bench.peers.registry import CONFIG_NAMES, PEERS
from bench.scenarios import Bench

STEP_TIMEOUT = 600  # one enqueue, drain or probe run of one peer, seconds


# -- one peer, one configuration, one run ----------------------------------------------------------
def _adapter(command: list[str], bench: Bench, log: Path, *args: str) -> dict:
    """Run the adapter's enqueue or probe command; its result is the stdout line starting RESULT."""
    with open(log, "ab") as out:
        done = subprocess.run(
            [*command, *args],
            env=procs.env(bench.url),
            cwd=procs.ROOT,
            stdout=subprocess.PIPE,
            stderr=out,
            timeout=STEP_TIMEOUT,
        )
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"`{args[0]}` exited with {done.returncode}; see {log}: {tail(log.read_text())}")
    return json.loads(lines[-1][len("RESULT ") :])


def _stop(worker: procs.Process) -> procs.Finished:
    """SIGTERM, then SIGKILL (its children too: pool processes) if it has not exited within 20 s."""
    children = procs._children(worker.pid)
    worker.stop()
    try:
        return worker.wait(timeout=20)
    except RuntimeError:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        return worker.wait(timeout=10)


def measure(command: list[str], config: str, bench: Bench, tag: str) -> dict[str, float]:
    log = bench.log(tag)
    r = bench.fresh()
    total = bench.jobs
    s1 = total / _adapter(command, bench, log, "enqueue", str(total))["seconds"]
    worker = procs.Process([*command, "worker", config], bench.url, log)
    try:
        cpu = scenarios.CpuMeter(r, worker)
        scenarios._wait_done(r, worker, log, timeout=STEP_TIMEOUT)
        end = body.now()
        costs = cpu.per_job(total)
    finally:
        finished = _stop(worker)
    ran = int(r.get(body.COUNTER) or 0)
    if ran != total:
        raise RuntimeError(f"expected {total} jobs run, got {ran}")
    first = float(r.get(body.FIRST))
    drain = {"s1": s1, "s2": total / (end - first), "rss": finished.peak_rss_mib, **costs}
    return {**drain, **_latency(command, config, bench, log)}


def _latency(command: list[str], config: str, bench: Bench, log: Path) -> dict[str, float]:
    r = bench.fresh()
    worker = procs.Process([*command, "worker", config], bench.url, log)
    try:
        _adapter(command, bench, log, "probe", str(bench.latency_jobs), str(bench.latency_rate))
        scenarios._wait_for(lambda: int(r.get(body.COUNTER) or 0) >= bench.latency_jobs, "the probes", timeout=60)
    finally:
        _stop(worker)
    return scenarios.percentiles(scenarios._latencies(r, bench.latency_jobs))


# -- the ceiling and tempotask, measured the same way ----------------------------------------------
def measure_ceiling(bench: Bench) -> dict[str, float]:
    r = bench.fresh()
    ceiling.prepare(r)
    s1 = bench.jobs / ceiling.enqueue_each(r, bench.jobs)
    drain = scenarios.drain_ceiling(bench, bench.jobs)
    lat = scenarios.percentiles(scenarios.latency_ceiling(bench))
    return {"s1": s1, "s2": drain["rate"], "rss": drain["rss"], **_costs(drain), **lat}


def measure_tempotask(bench: Bench, concurrency: int, prefetch: int = 0) -> dict[str, float]:
    bench = dataclasses.replace(bench, concurrency=concurrency, prefetch=prefetch)
    bench.fresh()
    data = {"total": bench.jobs}
    start = time.perf_counter()
    for _ in range(bench.jobs):
        tasks.incr.enqueue(data)
    s1 = bench.jobs / (time.perf_counter() - start)
    drain = scenarios.drain_ours(bench, bench.jobs, 1)
    lat = scenarios.percentiles(scenarios.latency_ours(bench))
    return {"s1": s1, "s2": drain["rate"], "rss": drain["rss"], **_costs(drain), **lat}


COST_KEYS = ("consumer_us", "consumer_sys_us", "consumer_switches", "redis_us")


def _costs(drain: dict) -> dict[str, float]:
    return {key: drain[key] for key in COST_KEYS if key in drain}


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def run_peers(bench: Bench, runs: int, names: list[str], concurrency: int) -> dict:
    """Every run's values, per row ("ceiling", "tempotask/default", "celery/best", ...), and each peer's status."""
    status: dict[str, dict] = {}
    commands: dict[str, list[str]] = {}
    for name in names:
        peer = PEERS[name]
        _progress(f"installing {peer.label}")
        try:
            commands[name], versions = install(peer)
            status[name] = {"versions": versions}
        except Skipped as exc:
            status[name] = {"skipped": str(exc)}
            print(f"note: {peer.label} skipped: {exc}", flush=True)
        except Exception as exc:  # any failure is reported in the table, never fatal
            status[name] = {"failed": f"install: {exc}"}
    tempotask_configs = {"default": 1, "best": concurrency}
    values: dict[str, list] = {}
    errors: dict[str, str] = {}

    def attempt(row: str, step) -> None:
        if row in errors:
            return
        try:
            values.setdefault(row, []).append(step())
            _progress(f"{row}: {_short(values[row][-1])}")
        except Exception as exc:
            errors[row] = f"{type(exc).__name__}: {exc}"
            _progress(f"{row} failed: {errors[row]}")
            traceback.print_exc(file=sys.stderr)

    for run in range(runs):
        _progress(f"peers, run {run + 1}/{runs}")
        attempt("ceiling", lambda: measure_ceiling(bench))
        for config, n in tempotask_configs.items():
            prefetch = bench.prefetch if config == "best" else 0
            attempt(f"tempotask/{config}", lambda n=n, p=prefetch: measure_tempotask(bench, n, p))
        for name, command in commands.items():
            for config in CONFIG_NAMES:
                row = f"{name}/{config}"
                attempt(row, lambda c=command, cf=config, row=row: measure(c, cf, bench, row.replace("/", "-")))
    return {"values": values, "errors": errors, "peers": status, "tempotask_concurrency": tempotask_configs}


def _short(v: dict) -> str:
    return (
        f"S1 {v['s1']:,.0f}/s, S2 {v['s2']:,.0f}/s, S3 p50 {v['p50']:.2f} ms p99 {v['p99']:.2f} ms,"
        f" RSS {v['rss']:.0f} MiB"
    )
