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
