"""Data-volume access beneath a held directory, the weights digest, and the runner's own
files (issue 23 items 1-3, 5, 8). Real files in a temporary directory; no model."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from musepose_runner.cli import main
from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import AnimationRef, ExitCode, JobSpec, StorageScope
from musepose_runner.run.stages import run_job
from musepose_runner.storage import beneath
from musepose_runner.storage.places import parse_place
from musepose_runner.storage.transfer import Storage
from musepose_runner.weights.digest import LOCK_NAME, LOCK_SCHEMA, weights_digest

OUT = parse_place("output", "/out/a/v.mp4", output=True)


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test twice: with openat2, and with the component walk used where it is missing."""
    saved = beneath._Kernel.usable
    beneath._Kernel.usable = None if request.param == "openat2" else False
    yield str(request.param)
    beneath._Kernel.usable = saved


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "secret").write_text("theirs")
    (tmp_path / "a" / "dirlink").symlink_to("../other")
    (tmp_path / "a" / "b" / "filelink").symlink_to("../../other/secret")
    return tmp_path


def _open(root: Path, relative: str) -> str:
    dir_fd = os.open(root / "a", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = beneath.open_beneath(dir_fd, relative, os.O_RDONLY)
        try:
            return os.read(fd, 100).decode()
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def test_a_plain_path_opens(tree: Path, resolver: str) -> None:
    assert _open(tree, "b/f") == "mine"


@pytest.mark.parametrize("relative", ["dirlink/secret", "b/filelink"])
def test_a_link_anywhere_on_the_way_is_refused(tree: Path, resolver: str, relative: str
                                               ) -> None:
    with pytest.raises(OSError) as raised:
        _open(tree, relative)
    assert raised.value.errno in (errno.ELOOP, errno.ENOTDIR)


@pytest.mark.parametrize("relative", ["../other/secret", "b/../../other/secret", "b//f"])
def test_dot_dot_and_empty_components_are_refused(tree: Path, resolver: str, relative: str
                                                  ) -> None:
    with pytest.raises(ValueError):
        _open(tree, relative)


def _scoped(root: Path) -> Storage:
    return Storage(root, root.parent / "scratch",
                   scope=StorageScope(read=("/in/a/", "/out/a/"), write=("/out/a/",)))


def test_an_input_is_a_private_copy_and_links_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "in" / "a").mkdir(parents=True)
    (root / "out" / "b").mkdir(parents=True)
    (root / "in" / "a" / "song.wav").write_bytes(b"team-a")
    (root / "out" / "b" / "song.wav").write_bytes(b"team-b")
    (root / "in" / "a" / "theirs.wav").symlink_to("../../out/b/song.wav")
    storage = _scoped(root)
    copy = storage.fetch(parse_place("audio", "/in/a/song.wav"))
    (root / "in" / "a" / "song.wav").write_bytes(b"changed later")
    assert copy.read_bytes() == b"team-a" and copy.parent == tmp_path / "scratch"
    with pytest.raises(BadInput) as raised:
        storage.fetch(parse_place("audio", "/in/a/theirs.wav"))
    assert raised.value.reason == "StorageScopeViolation"


def test_a_link_at_the_output_name_is_replaced_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "out" / "a").mkdir(parents=True)
    (root / "out" / "b").mkdir(parents=True)
    (root / "out" / "b" / "v.mp4").write_bytes(b"team-b")
    (root / "out" / "a" / "v.mp4").symlink_to("../b/v.mp4")
    local = tmp_path / "video"
    local.write_bytes(b"team-a")
    storage = _scoped(root)
    with pytest.raises(BadInput, match="exists"):
        storage.store(local, OUT, "video/mp4", owner="u")
    storage.store(local, OUT, "video/mp4", owner="u", overwrite=True)
    assert not (root / "out" / "a" / "v.mp4").is_symlink()
    assert (root / "out" / "a" / "v.mp4").read_bytes() == b"team-a"
    assert (root / "out" / "b" / "v.mp4").read_bytes() == b"team-b"
    assert sorted(p.name for p in (root / "out" / "a").iterdir()) == ["v.mp4"]


def test_the_weights_digest_covers_every_byte_and_uses_the_lock(tmp_path: Path) -> None:
    weights = tmp_path / "w"
    weights.mkdir()
    data = bytearray(os.urandom(3 << 20))
    (weights / "unet.bin").write_bytes(bytes(data))
    first = weights_digest(weights)
    data[len(data) // 2] ^= 0xFF  # a change in the middle, same size
    (weights / "unet.bin").write_bytes(bytes(data))
    os.utime(weights / "unet.bin", ns=(1, 1))
    assert weights_digest(weights) != first
    # With a lock, its sha256 stands for a file of the listed size (nothing is hashed).
    (weights / LOCK_NAME).write_text(json.dumps({"schema": LOCK_SCHEMA, "files": {
        "unet.bin": {"source": "x", "revision": None, "size": len(data), "sha256": "c" * 64}}}))
    locked = weights_digest(weights)
    expected = hashlib.sha256(f"unet.bin\0{len(data)}\0{'c' * 64}\n".encode()).hexdigest()
    assert locked == expected


@pytest.mark.parametrize(("option", "value"), [("--size", "63"), ("--size", "-8"),
                                               ("--steps", "0"), ("--steps", "201")])
def test_bad_size_or_steps_is_a_usage_error_naming_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    assert main(["payload", str(payload), option, value]) == ExitCode.USAGE
    assert f"argument {option}" in capsys.readouterr().err


def test_a_failed_run_leaves_no_files_in_scratch(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(scratch))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", str(tmp_path))
    monkeypatch.setattr("musepose_runner.run.stages.check_weights_layout", lambda _: None)
    (tmp_path / "ref.png").write_bytes(b"not an image")
    spec = JobSpec(animation=AnimationRef(namespace="local", name="x"),
                   reference_image="/ref.png", output="/out.mp4")
    result = run_job(spec, weights_dir=tmp_path / "no-weights")
    assert (result.succeeded, result.field) == (False, "referenceImage")  # after the copy
    assert list(scratch.iterdir()) == []
