"""A real MinIO server on a free loopback port, data in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.harness.binaries import binary
from tests.harness.processes import Daemon, free_port, start_daemon, wait_for

ACCESS_KEY = "musepose-test"
SECRET_KEY = "musepose-test-secret"


@dataclass
class MinioServer:
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    workdir: Path
    daemon: Daemon | None = None
    owns_workdir: bool = True
    argv: list[str] | None = None  # how the daemon was started, for restart()
    env: dict[str, str] | None = None

    def client(self):  # type: ignore[no-untyped-def]
        from minio import Minio

        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False)

    def halt(self) -> None:
        """Stop the server but keep its data: an outage of the object store."""
        if self.daemon:
            self.daemon.stop()

    def restart(self) -> None:
        """Start it again on the same address and data, after halt()."""
        assert self.argv is not None, "only a server this harness started can restart"
        self.daemon = start_daemon("minio", self.argv, self.workdir / "logs", env=self.env)
        port = self.endpoint.rsplit(":", 1)[1]
        wait_for("MinIO", lambda: _live(port), 60, self.daemon)

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_minio(workdir: Path | None = None) -> MinioServer:
    owns = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="musepose-minio-"))
    port, console = free_port(), free_port()
    argv = [binary("minio"), "server", str(workdir / "data"),
            "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}",
            "--quiet"]
    env = {"MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1"}
    daemon = start_daemon("minio", argv, workdir / "logs", env=env)
    server = MinioServer(f"127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY, workdir, daemon, owns,
                         argv, env)
    try:
        wait_for("MinIO", lambda: _live(str(port)), 60, daemon)
    except BaseException:
        server.stop()
        raise
    return server


def _live(port: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/minio/health/live",
                                timeout=2) as reply:
        return bool(reply.status == 200)
