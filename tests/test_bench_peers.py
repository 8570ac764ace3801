"""The peer section of the benchmark: its option parses and every adapter is in place (no installs, no network)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest

from bench.peers.registry import CONFIG_NAMES, HERE, PEERS

ROOT = Path(__file__).resolve().parent.parent
PYTHON_PEERS = [p for p in PEERS.values() if not p.node]


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peers_option_names_all_peers_or_some():
    run = _run_module()
    assert run.parse_args(["--peers"]).peers == list(PEERS)
    assert run.parse_args(["--peers", "rq", "node"]).peers == ["rq", "node"]
    assert run.parse_args(["--peers-only"]).peers == list(PEERS)
    assert run.parse_args([]).peers is None
    with pytest.raises(SystemExit):
        run.parse_args(["--peers", "nosuchqueue"])


def test_async_scenario_is_selectable():
    assert "async" in _run_module().parse_args(["--only", "async"]).only


@pytest.mark.parametrize("peer", PYTHON_PEERS, ids=lambda p: p.name)
def test_python_adapter_defines_what_the_runner_calls(peer):
    tree = ast.parse((HERE / f"{peer.name}_peer.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert {"send_count", "send_stamp", "run_worker"} <= defined
    assert set(peer.configs) == set(CONFIG_NAMES)


@pytest.mark.parametrize("peer", PYTHON_PEERS, ids=lambda p: p.name)
def test_python_requirements_are_pinned(peer):
    lines = [line for line in peer.requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in lines), lines
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert {p.lower() for p in peer.packages} <= pinned


def test_node_peer_is_locked():
    node = HERE / "node"
    wanted = json.loads((node / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in wanted.values()), wanted
    locked = json.loads((node / "package-lock.json").read_text())["packages"]
    assert {name: locked[f"node_modules/{name}"]["version"] for name in wanted} == wanted


def _result(**peers):
    run = {"s1": 100.0, "s2": 50.0, "p50": 1.0, "p99": 2.0, "rss": 40.0}
    values = {"ceiling": [{**run, "s1": 200.0, "s2": 100.0, "p50": 0.5, "p99": 1.0}], "huey/default": [run]}
    errors = {"huey/best": "RuntimeError: the drain did not finish"}
    return {"values": values, "errors": errors, "peers": peers}


def test_a_peer_that_failed_or_was_skipped_is_a_row_with_its_reason():
    from bench.peers import table

    result = _result(
        huey={"versions": {"huey": "3.5.4"}},
        rq={"failed": "install: pip install failed (1)"},
        node={"skipped": "`node` and `npm` are not on PATH"},
    )
    rows = table.rows(result, {})
    cells = {(row[0], row[1].split(":")[0]): row for row in rows[1:]}
    assert cells[("Huey", "default")][2:6] == ["100 (0.50x)", "50 (0.50x)", "1.00 (2.00x)", "2.00 (2.00x)"]
    assert cells[("Huey", "best")][2] == "failed: RuntimeError: the drain did not finish"
    assert cells[("RQ", "failed")][2] == "install: pip install failed (1)"
    assert cells[("BullMQ (Node.js)", "skipped")][2] == "`node` and `npm` are not on PATH"
    summary = table.summary_rows(result, {})
    assert [
        "Huey 3.5.4",
        "default: " + PEERS["huey"].configs["default"],
        "0.50x",
        "0.50x",
        "2.00x",
        "2.00x",
        "40",
    ] in summary


def test_node_peer_is_skipped_without_node(monkeypatch):
    from bench.peers import install

    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    with pytest.raises(install.Skipped):
        install.install(PEERS["node"])


def test_the_costs_per_job_are_columns_each_in_its_own_format():
    from bench.peers import table

    result = _result(huey={"versions": {"huey": "3.5.4"}})
    result["values"]["huey/default"] = [
        {**result["values"]["huey/default"][0], "consumer_us": 268.4, "consumer_switches": 4.04, "redis_us": 93.6}
    ]
    rows = table.rows(result, {})
    head = rows[0]
    huey = next(row for row in rows if row[0] == "Huey" and row[1].startswith("default"))
    costs = {title: huey[head.index(title)] for title in head if "/job" in title}
    assert costs == {
        "S2 worker CPU µs/job": "268",
        "S2 worker context switches/job": "4.0",
        "S2 Redis CPU µs/job": "94",
    }
    ceiling = next(row for row in rows if row[0].startswith("ceiling"))
    assert ceiling[head.index("S2 worker context switches/job")] == "—"  # not measured: shown as such


def test_a_process_usage_counts_its_cpu_time_and_its_threads_context_switches():
    import os
    import threading
    import time

    from bench import procs

    go, leave, slept = threading.Event(), threading.Event(), threading.Semaphore(0)

    def nap_ten_times() -> None:
        go.wait()
        for _ in range(10):
            time.sleep(0.001)  # a voluntary context switch each
        slept.release()
        leave.wait()  # alive until read: a thread's counts go with it

    threads = [threading.Thread(target=nap_ten_times) for _ in range(10)]
    for thread in threads:
        thread.start()
    before = procs._usage(os.getpid())
    go.set()
    for _ in threads:
        slept.acquire()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # some CPU time to see (the kernel counts it in 10 ms ticks)
        pass
    during = procs._usage(os.getpid())
    leave.set()
    for thread in threads:
        thread.join()
    used = during - before
    assert used.cpu > 0
    assert 0 <= used.system <= used.cpu + 1e-9  # the sums of ticks, in float seconds
    assert used.switches >= 10 * len(threads)  # the main thread alone switched far fewer times
    assert procs._usage(2**22 + 12345) == procs.Usage()  # a process that is gone used nothing
