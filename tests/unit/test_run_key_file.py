"""The run's key file as a pod gets it: a Secret volume (links), and what must be refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from musepose_runner.contract.errors import RunnerError
from musepose_runner.contract.run_key import RunKey, from_file

KEY = bytes(range(32))


def _secret_volume(root: Path) -> Path:
    """The layout the kubelet writes for a Secret volume: key -> ..data/key,
    ..data -> ..<timestamp>/ holding the bytes."""
    version = root / "..2026_12_08_03_20_00.123456789"
    version.mkdir()
    (version / "key").write_bytes(KEY)
    (root / "..data").symlink_to(version.name)
    (root / "key").symlink_to("..data/key")
    return root / "key"


def test_a_key_in_a_secret_volume_is_read_through_its_links(tmp_path: Path) -> None:
    key = from_file(str(_secret_volume(tmp_path)))
    assert key.mac("x") == RunKey(KEY).mac("x")


def _refusal(path: Path) -> str:
    with pytest.raises(RunnerError) as refused:
        from_file(str(path))
    assert refused.value.reason == "RunKeyInvalid"
    return refused.value.message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "key")
    assert "is not a file" in _refusal(tmp_path / "key")


def test_a_directory_a_missing_file_and_a_short_key_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    assert "dir" in _refusal(tmp_path / "dir")
    assert "cannot be read" in _refusal(tmp_path / "absent")
    (tmp_path / "short").write_bytes(b"0123456789")
    assert "holds 10 bytes" in _refusal(tmp_path / "short")
