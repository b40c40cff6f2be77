"""Where the harness's binaries are: KUBEBUILDER_ASSETS, else the cache build-binaries.sh fills."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
         "helm", "minio")


def cache_dir() -> Path:
    return Path(os.environ.get("MUSEPOSE_CACHE", Path.home() / ".cache" / "musepose-dev"))


def bin_dir(build: bool = True) -> Path:
    """The directory holding every binary, building what is missing when ``build``."""
    current = cache_dir() / "bin" / "current"
    if all((current / name).exists() for name in NAMES):
        return current
    if not build:
        raise FileNotFoundError(f"binaries missing in {current}: run tests/harness/build-binaries.sh")
    out = subprocess.run(
        ["bash", str(HERE / "build-binaries.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def binary(name: str) -> str:
    return str(bin_dir() / name)
