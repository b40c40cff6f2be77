"""Run built images without a container runtime, the way the chart's pods run them.

``buildah`` (in the storage images/common.sh names) makes a container from the image and
mounts its root; images/run-as-pod.sh runs a command there in its own mount and PID
namespaces with the root read-only, a host directory as the only writable /tmp, the image's
user (or another) and the image's environment only. Needs root, like buildah here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMON = ROOT / "images" / "common.sh"
RUN_AS_POD = ROOT / "images" / "run-as-pod.sh"


def buildah(*args: str) -> str:
    """buildah with the project's storage settings; its stdout."""
    script = f"source {shlex.quote(str(COMMON))} && buildah_ \"$@\""
    done = subprocess.run(["bash", "-c", script, "buildah", *args], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class MountedImage:
    """One container of ``image`` with its root mounted on the host, until close()."""

    def __init__(self, image: str) -> None:
        self.image = image
        inspected: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))
        self.config: dict[str, Any] = inspected["OCIv1"]["config"]
        self.container = buildah("from", "--pull-never", "--quiet", image).strip()
        try:
            self.root = Path(buildah("mount", self.container).strip())
        except Exception:
            buildah("rm", self.container)
            raise

    def close(self) -> None:
        buildah("umount", self.container)
        buildah("rm", self.container)

    @property
    def size(self) -> int:
        """The image's unpacked size in bytes (the files of its root)."""
        done = subprocess.run(["du", "-sb", str(self.root)], check=True, capture_output=True,
                              text=True)
        return int(done.stdout.split()[0])

    def run(self, args: list[str], tmp: Path, *, entrypoint: bool = True,
            user: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``args`` after the image's ENTRYPOINT (or alone when ``entrypoint`` is False), as
        the image's USER unless ``user`` is given, with ``tmp`` as the only writable /tmp."""
        command = [*(self.config.get("Entrypoint") or [])] if entrypoint else []
        command += args
        variables = list(self.config.get("Env") or [])
        variables += [f"{k}={v}" for k, v in (env or {}).items()]
        tmp.chmod(0o1777)
        user = user or self.config.get("User") or "0:0"
        workdir = self.config.get("WorkingDir") or "/"
        # chroot starts in /; the image's WorkingDir is entered by a tiny shell-free hop.
        wrapped = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', workdir, *command]
        return subprocess.run(
            [str(RUN_AS_POD), str(self.root), user, str(tmp), "--", *variables, *wrapped],
            capture_output=True, text=True, timeout=timeout, env={**os.environ})
