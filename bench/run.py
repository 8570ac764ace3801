"""Benchmark tempotask against a plain redis-py Streams loop (the ceiling), in the same run.

    .venv/bin/python bench/run.py            # full run: 3 runs of each scenario, ~6 minutes
    .venv/bin/python bench/run.py --quick    # 1 run, no 100k scale test, 6 s idle window
    .venv/bin/python bench/run.py --peers    # then the same scenarios for other queues (see bench/peers/)
    .venv/bin/python bench/run.py --peers-only --runs 1 --jobs 5000   # the peer table alone

Starts its own redis-server (system binary preferred) on a free loopback port, measures each
scenario for tempotask and for the ceiling back to back, prints a table of medians and ratios and
writes every raw value to bench/results/<time>.json. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers.registry import PEERS  # noqa: E402
from tempotask_django.embedded import EmbeddedRedis  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (medians are reported)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in S1, S1b and S2")
    parser.add_argument("--scale-jobs", type=int, default=100_000, help="jobs in the scale drain (0 skips it)")
    parser.add_argument("--concurrency", type=int, default=16, help="runworkers --concurrency for S2 and S3")
    parser.add_argument("--prefetch", type=int, default=0, help="runworkers --prefetch for S2 and S3 (0: none)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU window")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--quick", action="store_true", help="--runs 1 --scale-jobs 0 --idle-seconds 6")
    parser.add_argument(
        "--peers",
        nargs="*",
        metavar="PEER",
        choices=PEER_NAMES,
        help=f"also measure other queues, each in its own virtualenv (all when none is named: {', '.join(PEER_NAMES)})",
    )
    parser.add_argument("--peers-only", action="store_true", help="the peer section alone (implies --peers)")
    parser.add_argument("--json", type=Path, help="where to write the results (default bench/results/<time>.json)")
    args = parser.parse_args(argv)
    if args.peers_only and args.peers is None:
        args.peers = []
    if args.peers == []:
        args.peers = list(PEER_NAMES)
    if args.quick:
        args.runs, args.scale_jobs, args.idle_seconds = 1, 0, 6.0
    return args


SCENARIOS = ("enqueue", "bulk", "drain", "async", "latency", "idle", "scale")
PEER_NAMES = tuple(PEERS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with EmbeddedRedis(prefer="system") as server, tempfile.TemporaryDirectory(prefix="tempotask-bench-") as logs:
        os.environ["BENCH_REDIS_URL"] = server.url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        import django

        django.setup()
        from bench import measure

        bench = measure.make_bench(server.url, Path(logs), args)
        print(measure.describe_machine(bench), flush=True)
        figures, raw = [], {}
        if not args.peers_only:
            figures, raw = measure.run_all(bench, args, set(args.only or SCENARIOS))
        peers = None
        if args.peers:
            from bench.peers import runner

            peers = runner.run_peers(bench, args.runs, args.peers, args.concurrency)
    from bench.report import text_table

    if figures:
        print()
        print(text_table(figures))
    if peers is not None:
        from bench.peers import table

        described = {
            "default": "runworkers (--concurrency 1, the default)",
            "best": f"runworkers {' '.join(bench.worker_options)}",
        }
        peer_rows = table.rows(peers, described)
        peers["markdown"] = table.markdown_table(peer_rows)
        peers["summary_markdown"] = table.markdown_table(table.summary_rows(peers, described))
        print("\nPeers (median of the runs; ratio to the ceiling of the same run in parentheses):")
        print(table.text_table(peer_rows))
    out = args.json or ROOT / "bench" / "results" / f"{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "machine": platform.uname()._asdict(),
                "time": time.time(),
                "raw": raw,
                "figures": [f.__dict__ for f in figures],
                "peers": peers,
            },
            indent=1,
        )
    )
    print(f"\nraw values: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
