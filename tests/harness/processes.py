"""Small process helpers: free ports, starting daemons with logs, waiting with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_daemon(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> Daemon:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
    return Daemon(name, process, log)

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 90) -> T:
    """Poll ``probe`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, daemon: Daemon | None = None
) -> None:
    """Poll ``check`` until it is true; fail early if ``daemon`` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None and not daemon.alive():
            raise RuntimeError(f"{daemon.name} exited while waiting for {what}:\n{daemon.tail()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet; keep polling until the deadline
            pass
        time.sleep(0.2)
    tail = f"\n{daemon.tail()}" if daemon else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
