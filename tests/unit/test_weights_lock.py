"""The weights lock, the catalog of files a pull fetches, bounded retries and the runner's
start check against the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musepose_runner.contract.errors import Transient, WeightsError
from musepose_runner.weights import lock as weights_lock
from musepose_runner.weights.layout import CATALOG, GROUPS, REQUIRED, check_weights_layout
from musepose_runner.weights.lock import LOCK_NAME, Entry, LockError
from musepose_runner.weights.pull import Mismatch, Options, with_retries


def _tree(tmp_path: Path) -> dict[str, Entry]:
    lock: dict[str, Entry] = {}
    for path in [str(p) for p in REQUIRED] + ["dwpose/yolox_l.onnx"]:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.encode())
        lock[path] = Entry(f"s3://b/{path}", None, len(path), weights_lock.sha256_of(target))
    weights_lock.write_atomic(tmp_path / LOCK_NAME, weights_lock.dumps(lock))
    return lock


def test_lock_round_trips_in_the_agreed_format(tmp_path: Path) -> None:
    lock = _tree(tmp_path)
    data = json.loads((tmp_path / LOCK_NAME).read_text())
    assert data["schema"] == "musepose-weights-lock/1"
    assert data["files"]["dwpose/yolox_l.onnx"] == {
        "source": "s3://b/dwpose/yolox_l.onnx", "revision": None,
        "size": len("dwpose/yolox_l.onnx"), "sha256": lock["dwpose/yolox_l.onnx"].sha256}
    assert weights_lock.read(tmp_path / LOCK_NAME) == lock


@pytest.mark.parametrize("files, fault", [
    ({"../x": {}}, "not a plain relative path"),
    ({"/abs": {}}, "not a plain relative path"),
    ({"a/./b": {}}, "not a plain relative path"),
    ({"a": {"source": "s3://b/a", "revision": None, "size": -1, "sha256": "0" * 64}}, "size"),
    ({"a": {"source": "s3://b/a", "revision": None, "size": 1, "sha256": "XYZ"}}, "sha256"),
    ({"a": {"source": "", "revision": None, "size": 1, "sha256": "0" * 64}}, "source"),
    ({"a": {"source": "s3://b/a", "revision": 3, "size": 1, "sha256": "0" * 64}}, "revision"),
])
def test_invalid_locks_are_refused_naming_the_fault(files: dict[str, object],
                                                    fault: str) -> None:
    with pytest.raises(LockError, match=fault):
        weights_lock.parse(json.dumps({"schema": weights_lock.SCHEMA, "files": files}))
    with pytest.raises(LockError, match="not a musepose-weights-lock/1"):
        weights_lock.parse(json.dumps({"schema": "other", "files": {}}))


def test_runner_start_check_names_missing_and_resized_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    check_weights_layout(tmp_path)  # matches
    (tmp_path / "dwpose" / "yolox_l.onnx").unlink()
    (tmp_path / "MusePose" / "pose_guider.pth").write_bytes(b"short")
    with pytest.raises(WeightsError) as caught:
        check_weights_layout(tmp_path)
    assert caught.value.exit_code == 78
    assert "dwpose/yolox_l.onnx: missing" in caught.value.message
    assert "MusePose/pose_guider.pth: 5 bytes" in caught.value.message
    assert "denoising_unet" not in caught.value.message


def test_full_verification_finds_same_size_corruption(tmp_path: Path) -> None:
    lock = _tree(tmp_path)
    (tmp_path / "sd-vae-ft-mse" / "config.json").write_bytes(b"X" * lock[
        "sd-vae-ft-mse/config.json"].size)
    assert weights_lock.problems(tmp_path, lock, full=False) == []
    assert weights_lock.problems(tmp_path, lock, full=True) == [
        f"sd-vae-ft-mse/config.json: sha256 differs from the lock's "
        f"{lock['sd-vae-ft-mse/config.json'].sha256[:12]}…"]


def test_retries_are_bounded_with_exponential_backoff() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("connection reset")
        return "ok"

    options = Options(groups=frozenset(), retries=5, backoff_seconds=0.5, sleep=waits.append)
    assert with_retries("x", flaky, options) == "ok"
    assert waits == [0.5, 1.0]

    def broken() -> str:
        raise Mismatch("x: sha256 differs")

    waits.clear()
    with pytest.raises(Mismatch):
        with_retries("x", broken, Options(groups=frozenset(), retries=2, sleep=waits.append))
    assert waits == [1.0, 2.0]


def test_catalog_names_exactly_the_files_the_runner_reads() -> None:
    from musepose_runner.media.background import MODEL_FILE
    from musepose_runner.pose.dwpose import DETECTOR_FILE, ESTIMATOR_FILE

    paths = {choice.path for slot in CATALOG for choice in slot.choices}
    assert {str(p) for p in REQUIRED} <= paths
    assert {str(DETECTOR_FILE), str(ESTIMATOR_FILE), str(MODEL_FILE)} <= paths
    for slot in CATALOG:
        for choice in slot.choices:
            assert slot.optional or choice.hf_repo or choice.url, choice.path


def test_one_pull_per_directory_at_a_time(tmp_path: Path) -> None:
    import fcntl
    import os

    from musepose_runner.weights.pull import pull
    from musepose_runner.weights.sources import DirectorySource

    source = tmp_path / "source"
    source.mkdir()
    lock = _tree(source)
    target = tmp_path / "target"
    target.mkdir()
    held = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(Transient, match="another weights pull is writing"):
            pull(target, DirectorySource(source), Options(groups=frozenset(GROUPS), lock=lock,
                                                          quiet=True))
        assert not (target / LOCK_NAME).exists()
    finally:
        os.close(held)
    done = pull(target, DirectorySource(source), Options(groups=frozenset(GROUPS), lock=lock,
                                                         quiet=True))
    assert sorted(done.downloaded) == sorted(lock)


@pytest.mark.parametrize("error, code", [(PermissionError(13, "Permission denied"), 78),
                                         (OSError(30, "Read-only file system"), 78),
                                         (OSError(28, "No space left on device"), 75)])
def test_directory_errors_map_to_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            error: OSError, code: int) -> None:
    from musepose_runner.cli import main
    from musepose_runner.weights import pull as weights_pull

    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(weights_pull, "pull", failing)
    assert main(["weights", "pull", str(tmp_path / "w"), "--from", str(tmp_path)]) == code
