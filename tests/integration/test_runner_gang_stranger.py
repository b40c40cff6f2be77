"""A stranger joining a two-worker run as worker 1 gets nothing and changes nothing (issue 30).

Two workers of ``musepose-runner run`` (two pods of an Indexed Job, on the CPU with gloo,
the run's key in $MUSEPOSE_RUN_KEY_FILE as the operator mounts it) make a video; then the
same run again, with a stranger (tests/integration/gang_stranger.py: no key, the runner's
own code) asking to join as worker 1 after worker 0 listens and before the real worker 1
starts. The stranger must fail on its own, receive none of the inputs, and the video's
sha256 must equal the undisturbed run's, with both real workers succeeding.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_runner_parallel import free_port, wait_all, worker_env
from tests.parity.test_pipeline_parity import FIXTURES

pytestmark = pytest.mark.slow
CASE = FIXTURES / "long_wrapped"  # 12 pose frames, two windows of 8
WEIGHTS = FIXTURES / "weights"
FOLLOWER_SECONDS = 60.0  # worker 1's bound once worker 0 and the stranger have ended
STRANGER_SECONDS = 120.0  # the stranger gives up after 20 s of waiting; start-up on a busy CPU


def _job(folder: Path, poses: Path, port: int, per_pod: int = 1) -> Path:
    document: dict[str, Any] = {
        "animation": {"namespace": "test", "name": "stranger"},
        "referenceImage": str(CASE / "reference.png"), "motionSequence": str(poses),
        "output": str(folder / "out" / "video.mp4"), "overwrite": True, "seed": 11,
        "watermark": {"enabled": False},
        "inference": {"width": 64, "height": 64, "steps": 3, "contextFrames": 8,
                      "contextOverlap": 2, "frameSkip": 0, "dtype": "float32"},
        "parallel": {"workers": 2, "processesPerPod": per_pod, "coordinator": "127.0.0.1",
                     "port": port, "rendezvousTimeoutSeconds": 120},
    }
    path = folder / "job.json"
    path.write_text(json.dumps(document))
    return path


def _pod(job: Path, index: int) -> subprocess.Popen[bytes]:
    result = job.parent / f"pod{index}.json"
    return subprocess.Popen(
        [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job), "--weights",
         str(WEIGHTS), "--device", "cpu", "--quiet"],
        env={**worker_env(), "MUSEPOSE_RESULT_PATH": str(result), "MUSEPOSE_DATA_ROOT": "/",
             "MUSEPOSE_SCRATCH": str(job.parent / f"scratch{index}"),
             "JOB_COMPLETION_INDEX": str(index)})


def _result(job: Path, index: int) -> dict[str, Any]:
    return dict(json.loads((job.parent / f"pod{index}.json").read_text()))


@pytest.fixture(scope="module")
def poses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("poses") / "poses.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "8", "-i",
                    str(CASE / "pose_%03d.png"), "-c:v", "ffv1", "-pix_fmt", "bgr0", str(out)],
                   check=True)
    return out


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory, poses: Path) -> str:
    """The sha256 of the video two workers make alone."""
    job = _job(tmp_path_factory.mktemp("undisturbed"), poses, free_port())
    assert wait_all([_pod(job, 0), _pod(job, 1)], time.monotonic() + 600) == [0, 0]
    sha = str(_result(job, 0)["output"]["sha256"])
    assert hashlib.sha256((job.parent / "out" / "video.mp4").read_bytes()).hexdigest() == sha
    return sha


@pytest.mark.parametrize("mode", ["fixed-names", "wrong-key"])
def test_a_stranger_joining_as_worker_1_gets_nothing_and_changes_nothing(
        tmp_path: Path, poses: Path, undisturbed: str, mode: str) -> None:
    port = free_port()
    job = _job(tmp_path, poses, port)
    leader = _pod(job, 0)
    env = {k: v for k, v in worker_env().items() if k != "MUSEPOSE_RUN_KEY_FILE"}
    stranger = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.gang_stranger", mode, str(port),
         str(tmp_path), str(job), str(WEIGHTS)], env=env,
        stdout=open(tmp_path / "stranger.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    processes = [leader, stranger]
    try:
        deadline = time.monotonic() + STRANGER_SECONDS
        while not (tmp_path / "claimed").exists():  # it asked to join: now the real worker
            assert stranger.poll() is None, (tmp_path / "stranger.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the stranger never asked to join"
            time.sleep(0.05)
        follower = _pod(job, 1)
        processes.append(follower)
        codes = wait_all([leader, stranger], time.monotonic() + 600)
        # Worker 1 is done before worker 0 is (worker 0 waits for its frames): one still
        # running now is stuck (the stranger took its place).
        try:
            codes.append(follower.wait(timeout=FOLLOWER_SECONDS))
        except subprocess.TimeoutExpired:
            codes.append(-1)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    received = sorted(p.name for p in tmp_path.glob("received-*.npy"))
    assert not received, f"the stranger received {received}"
    assert codes[1] != 0, "the stranger was taken for worker 1"
    assert codes[0] == 0, _result(job, 0)
    assert codes[2] == 0, "worker 1 did not finish (stuck, or failed)"
    assert _result(job, 0)["output"]["sha256"] == undisturbed
    assert _result(job, 1)["succeeded"]


def test_several_workers_without_the_run_key_are_refused(tmp_path: Path, poses: Path) -> None:
    job = _job(tmp_path, poses, free_port())
    env = {k: v for k, v in worker_env().items() if k != "MUSEPOSE_RUN_KEY_FILE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job), "--weights",
         str(WEIGHTS), "--device", "cpu", "--quiet"],
        env={**env, "MUSEPOSE_RESULT_PATH": str(tmp_path / "pod0.json"),
             "JOB_COMPLETION_INDEX": "0"})
    assert wait_all([process], time.monotonic() + 120) == [78]
    result = _result(job, 0)
    assert result["reason"] == "InvalidConfiguration"
    assert "MUSEPOSE_RUN_KEY_FILE" in result["message"]


def test_the_workers_of_one_pod_without_a_key_get_their_launchers(
        tmp_path: Path, poses: Path, undisturbed: str) -> None:
    job = _job(tmp_path, poses, free_port(), per_pod=2)
    env = {k: v for k, v in worker_env().items() if k != "MUSEPOSE_RUN_KEY_FILE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job), "--weights",
         str(WEIGHTS), "--device", "cpu", "--quiet"],
        env={**env, "MUSEPOSE_RESULT_PATH": str(tmp_path / "pod0.json"),
             "MUSEPOSE_DATA_ROOT": "/", "MUSEPOSE_SCRATCH": str(tmp_path / "scratch")})
    assert wait_all([process], time.monotonic() + 600) == [0], _result(job, 0)
    assert _result(job, 0)["output"]["sha256"] == undisturbed
