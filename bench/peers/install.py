"""Installing a peer: its own virtualenv from its pinned requirements, or ``npm ci`` for BullMQ on Node.js.

No Django here: the tests check the installer's decisions without installing anything.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.peers.registry import HERE, Peer

VENVS = HERE.parent / ".peers"
NODE_DIR = HERE / "node"
INSTALL_TIMEOUT = 900


class Skipped(Exception):
    """The peer cannot run on this machine (e.g. no ``node``): reported as a note, not a failure."""


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


# -- installing ------------------------------------------------------------------------------------
def install(peer: Peer) -> tuple[list[str], dict[str, str]]:
    """The command that runs the peer's adapter, and the installed versions of its packages."""
    if peer.node:
        return _install_node(peer)
    venv = VENVS / peer.name
    python = venv / "bin" / "python"
    installed = venv / "requirements.txt"  # a copy of what was installed: reinstall when it changed
    if not (python.exists() and installed.exists() and filecmp.cmp(installed, peer.requirements, shallow=False)):
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        _run([*pip, "-r", str(peer.requirements)], "pip install")
        shutil.copyfile(peer.requirements, installed)
    script = (
        "import json, sys; from importlib import metadata;"
        " print(json.dumps({p: metadata.version(p) for p in sys.argv[1:]}))"
    )
    out = _run([str(python), "-c", script, *peer.packages], "reading versions")
    return [str(python), "-m", "bench.peers.cli", peer.name], json.loads(out)


def _install_node(peer: Peer) -> tuple[list[str], dict[str, str]]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise Skipped("`node` and `npm` are not on PATH")
    modules = NODE_DIR / "node_modules"
    stamp = modules / ".package-lock.json"  # npm writes it on every install
    lock = NODE_DIR / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        _run([npm, "ci", "--no-audit", "--no-fund"], "npm ci", cwd=NODE_DIR)
    versions = {p: json.loads((modules / p / "package.json").read_text())["version"] for p in peer.packages}
    versions["node"] = _run([node, "--version"], "node --version").strip().lstrip("v")
    return [node, str(NODE_DIR / "peer.mjs")], versions


def _run(args: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {tail(done.stderr or done.stdout)}")
    return done.stdout
