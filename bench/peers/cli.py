"""Entry point of a Python peer's adapter, run with the peer's interpreter (``bench/.peers/<name>/bin/python``).

    python -m bench.peers.cli NAME enqueue TOTAL
    python -m bench.peers.cli NAME probe TOTAL RATE
    python -m bench.peers.cli NAME worker CONFIG

The adapter is imported under its own module name (``bench.peers.NAME_peer``), never as ``__main__``, so
the names the peer stores with its jobs are the ones its worker imports.
"""

from __future__ import annotations

import importlib
import sys

from bench.peers import common


def main(argv: list[str]) -> None:
    name, command, *rest = argv
    adapter = importlib.import_module(f"bench.peers.{name}_peer")
    if command == "enqueue":
        common.emit(common.enqueue(adapter, int(rest[0])))
    elif command == "probe":
        common.emit(common.probe(adapter, int(rest[0]), float(rest[1])))
    elif command == "worker":
        adapter.run_worker(rest[0])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
