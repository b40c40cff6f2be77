"""The built operator image, run as the chart's Deployment runs it (uid 1000, read-only root,
writable /tmp only): it prints the CRD, starts its CLI, and carries no torch or media
libraries, nor build tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images.container import ROOT, MountedImage

# The image's size is printed and held: about 360 MB today (Debian base 177 MB).
MAX_SIZE = 500 * 10**6


def test_starts_as_uid_1000(operator_image: MountedImage, tmp_path: Path) -> None:
    assert operator_image.config["User"] == "1000:1000"
    done = operator_image.run(["python3", "-c", "import os; print(os.getuid(), os.getgid())"],
                              tmp_path, entrypoint=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000", "1000"]


def test_the_root_is_read_only_even_for_root(operator_image: MountedImage,
                                             tmp_path: Path) -> None:
    """The harness's own check: a write outside /tmp fails with EROFS, not a permission."""
    probe = ("import errno\ntry:\n    open('/opt/x', 'w')\nexcept OSError as e:\n"
             "    print(errno.errorcode[e.errno])\nopen('/tmp/ok', 'w').write('ok')")
    done = operator_image.run(["python3", "-c", probe], tmp_path, entrypoint=False, user="0:0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EROFS"
    assert (tmp_path / "ok").read_text() == "ok"


def test_crd_prints_exactly_the_committed_crd(operator_image: MountedImage,
                                              tmp_path: Path) -> None:
    done = operator_image.run(["crd"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "crds" / "musepose.io_animations.yaml").read_text()


def test_run_help(operator_image: MountedImage, tmp_path: Path) -> None:
    done = operator_image.run(["run", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: musepose-operator run")


def test_no_torch_nor_media_libraries(operator_image: MountedImage, tmp_path: Path) -> None:
    probe = ("import importlib.util as u\n"
             "print(*[m for m in ('torch', 'diffusers', 'transformers', 'cv2', 'onnxruntime',"
             " 'numpy', 'pip', 'setuptools') if u.find_spec(m)])\n"
             "import kopf, musepose_operator.cli, musepose_runner.contract.job_spec\nprint('ok')")
    done = operator_image.run(["python3", "-c", probe], tmp_path, entrypoint=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["", "ok"]


def test_no_build_tools_or_caches_left(operator_image: MountedImage) -> None:
    root = operator_image.root
    for tool in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "opt/musepose/bin/pip"):
        assert not (root / tool).exists(), tool
    assert not list((root / "var/lib/apt/lists").glob("*_Packages*"))
    assert not (root / "root/.cache").exists() and not (root / "src").exists()


def test_size(operator_image: MountedImage, capsys: pytest.CaptureFixture[str]) -> None:
    size = operator_image.size
    with capsys.disabled():
        print(f"\noperator image {operator_image.image}: {size / 1e6:.0f} MB unpacked")
    assert size < MAX_SIZE
