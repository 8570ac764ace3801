"""Repeat the scenarios (ours and the ceiling interleaved) and turn the raw values into Figures."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import defaultdict
from pathlib import Path

import django
import redis
from django.core.management import get_commands

from bench import scenarios
from bench.report import Figure
from bench.scenarios import Bench

RSS_TARGET_MIB = 50
IDLE_TARGET_PERCENT = 1
# Microseconds of CPU per job in the 1-process drain (issue 15): the worker process, and redis-server.
WORKER_CPU_TARGET_US = 130
REDIS_CPU_TARGET_US = 45


def make_bench(url: str, logs: Path, args: argparse.Namespace) -> Bench:
    return Bench(
        url=url,
        logs=logs,
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        jobs=args.jobs,
        idle_seconds=args.idle_seconds,
    )


def describe_machine(bench: Bench) -> str:
    info = redis.Redis.from_url(bench.url).info("server")
    try:
        import hiredis

        parser = f"hiredis {hiredis.__version__}"
    except ImportError:
        parser = "pure-Python parser (no hiredis)"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Redis {info['redis_version']} at {bench.url}; Python {platform.python_version()},"
        f" Django {django.__version__}, redis-py {redis.__version__} with {parser};"
        f" {os.cpu_count()} CPUs, load average {load};"
        f" runworkers {' '.join(bench.worker_options)}"
    )


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def run_all(bench: Bench, args: argparse.Namespace, wanted: set[str]) -> tuple[list[Figure], dict]:
    raw: dict[str, list] = defaultdict(list)
    for run in range(args.runs):
        _progress(f"run {run + 1}/{args.runs}")
        if "enqueue" in wanted:
            raw["enqueue"].append(scenarios.enqueue_each(bench))
            _progress(f"S1 enqueue {raw['enqueue'][-1]}")
        if "bulk" in wanted:
            raw["bulk"].append(scenarios.enqueue_bulk(bench))
            _progress(f"S1b bulk {raw['bulk'][-1]}")
        if "drain" in wanted:
            raw["drain"].append(_drains(bench, bench.jobs, run))
            _progress(f"S2 drain {raw['drain'][-1]}")
        if "async" in wanted:
            raw["async"].append(_async_drain(bench, run))
            _progress(f"S2 drain, async handlers {raw['async'][-1]}")
        if "latency" in wanted:
            raw["latency"].append(_latency(run, bench))
            _progress(f"S3 latency {raw['latency'][-1]}")
        if "scale" in wanted and args.scale_jobs:
            raw["scale"].append(_drains(bench, args.scale_jobs, run, two=False))
            _progress(f"scale drain {raw['scale'][-1]}")
    if "idle" in wanted:
        beat = "runcron" in get_commands()
        if not beat:
            print("note: no `runcron` command in this checkout: the idle beat figure is skipped", flush=True)
        raw["idle"] = scenarios.idle_cpu(bench, beat)
        _progress(f"idle {raw['idle']}")
    return figures(raw, bench), dict(raw)


def _drains(bench: Bench, total: int, run: int, two: bool = True) -> dict[str, dict]:
    """Ceiling and ours back to back; the order alternates between runs so neither always goes first."""
    steps = [
        ("ceiling", lambda: scenarios.drain_ceiling(bench, total)),
        ("p1", lambda: scenarios.drain_ours(bench, total, 1)),
    ]
    if two:
        steps.append(("p2", lambda: scenarios.drain_ours(bench, total, 2)))
    if run % 2:
        steps.reverse()
    return {name: step() for name, step in steps}


def _async_drain(bench: Bench, run: int) -> dict[str, dict]:
    """The ceiling and an async-handler drain (tasks.aincr, --concurrency 64) back to back."""
    steps = [
        ("ceiling", lambda: scenarios.drain_ceiling(bench, bench.jobs)),
        ("async", lambda: scenarios.drain_ours(bench, bench.jobs, 1, handlers="async")),
    ]
    if run % 2:
        steps.reverse()
    return {name: step() for name, step in steps}


def _latency(run: int, bench: Bench) -> dict[str, dict]:
    steps = [("ceiling", scenarios.latency_ceiling), ("ours", scenarios.latency_ours)]
    if run % 2:
        steps.reverse()
    return {name: scenarios.percentiles(step(bench)) for name, step in steps}


def figures(raw: dict, bench: Bench) -> list[Figure]:
    out: list[Figure] = []
    if raw.get("enqueue"):
        out.append(Figure("S1 enqueue, one call per job", "jobs/s", *_pair(raw["enqueue"]), ">= 0.9x"))
    if raw.get("bulk"):
        out.append(
            Figure("S1b bulk enqueue (batches of 100)", "jobs/s", *_pair(raw["bulk"]), ">= 0.5x", "vs pipelined XADD")
        )
    if raw.get("drain"):
        d = raw["drain"]
        p1 = [r["p1"]["rate"] for r in d]
        out.append(Figure("S2 drain, 1 process", "jobs/s", p1, [r["ceiling"]["rate"] for r in d], ">= 0.5x"))
        out.append(
            Figure(
                "S2 drain, 2 processes (ratio vs 1 process)",
                "jobs/s",
                [r["p2"]["rate"] for r in d],
                p1,
                ">= 1.6x",
                "reference column: tempotask with 1 process",
            )
        )
        out.append(
            Figure(
                "worker peak RSS (1 process, Django loaded)",
                "MiB",
                [r["p1"]["rss"] for r in d],
                [r["ceiling"]["rss"] for r in d],
                f"<= {RSS_TARGET_MIB}",
                "ceiling: plain consumer",
            )
        )
        out.append(
            Figure(
                "start-up: process start to first job",
                "s",
                [r["p1"]["startup"] for r in d],
                [r["ceiling"]["startup"] for r in d],
            )
        )
        for key, what, target in (
            ("consumer_us", "S2 CPU per job, consumer process", f"<= {WORKER_CPU_TARGET_US}"),
            ("consumer_sys_us", "  of which system (kernel) time", ""),
            ("consumer_switches", "  consumer context switches per job", ""),
            ("redis_us", "S2 CPU per job, Redis", f"<= {REDIS_CPU_TARGET_US}"),
        ):
            if all(key in r["p1"] and key in r["ceiling"] for r in d):
                unit = "" if key == "consumer_switches" else "µs"
                out.append(Figure(what, unit, [r["p1"][key] for r in d], [r["ceiling"][key] for r in d], target))
    out += _async_figures(raw.get("async"))
    if raw.get("latency"):
        lat = raw["latency"]
        for cut, target in (("p50", "<= 1.3x"), ("p95", ""), ("p99", "<= 2x")):
            out.append(
                Figure(
                    f"S3 enqueue-to-start {cut}",
                    "ms",
                    [r["ours"][cut] for r in lat],
                    [r["ceiling"][cut] for r in lat],
                    target,
                )
            )
    if raw.get("idle"):
        for name, shares in raw["idle"].items():
            out.append(Figure(f"idle {name} CPU", "% of a core", shares, None, f"< {IDLE_TARGET_PERCENT}"))
    if raw.get("scale"):
        s = raw["scale"]
        total = len(s) and "100k"
        out.append(
            Figure(
                f"scale: drain {total} jobs, 1 process",
                "jobs/s",
                [r["p1"]["rate"] for r in s],
                [r["ceiling"]["rate"] for r in s],
                ">= 0.5x",
            )
        )
        if raw.get("drain"):
            growth = [r10["p1"]["rate"] / r100["p1"]["rate"] for r10, r100 in zip(raw["drain"], s, strict=False)]
            out.append(Figure(f"scale: cost per job, {total} vs {bench.jobs:,} jobs", "x", growth, None, "<= 1.15"))
    return out


def _async_figures(a: list[dict] | None) -> list[Figure]:
    out: list[Figure] = []
    if not a:
        return out
    out.append(
        Figure(
            f"S2 drain, async handlers (--concurrency {scenarios.ASYNC_CONCURRENCY})",
            "jobs/s",
            [r["async"]["rate"] for r in a],
            [r["ceiling"]["rate"] for r in a],
            ">= 0.5x",
            "the job awaits one INCR through redis.asyncio",
        )
    )
    if all("consumer_us" in r["async"] and "consumer_us" in r["ceiling"] for r in a):
        out.append(
            Figure(
                "S2 async CPU per job, consumer process",
                "µs",
                [r["async"]["consumer_us"] for r in a],
                [r["ceiling"]["consumer_us"] for r in a],
            )
        )
    return out


def _pair(runs: list[dict]) -> tuple[list[float], list[float]]:
    return [r["ours"] for r in runs], [r["ceiling"] for r in runs]
