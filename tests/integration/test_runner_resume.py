"""A runner killed mid-denoising resumes from its checkpoint and makes the same video.

The runner runs as a process, as in a pod; SIGKILL stands for a node loss or preemption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.harness.processes import eventually
from tests.parity.test_pipeline_parity import FIXTURES

pytestmark = pytest.mark.slow
STEPS = 8


def _job(tmp_path: Path, poses: Path, checkpoint: Path, *, seed: int = 3) -> Path:
    case = FIXTURES / "render_size"
    job = {
        "animation": {"namespace": "test", "name": "resume", "uid": "u-1"},
        "referenceImage": str(case / "reference.png"),
        "motionSequence": str(poses),
        "output": str(tmp_path / f"out-{seed}-{time.monotonic_ns()}.mp4"),
        "seed": seed,
        "watermark": {"enabled": False},
        "inference": {"width": 64, "height": 64, "steps": STEPS, "contextFrames": 8,
                      "contextOverlap": 2, "frameSkip": 0, "dtype": "float32"},
        "checkpoint": {"location": str(checkpoint)},
    }
    path = tmp_path / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    return path


def _start(tmp_path: Path, job: Path, frames: Path) -> tuple[subprocess.Popen[bytes], Path]:
    result = tmp_path / f"result-{time.monotonic_ns()}.json"
    env = {**os.environ, "MUSEPOSE_RESULT_PATH": str(result), "MUSEPOSE_DATA_ROOT": "/",
           "MUSEPOSE_SCRATCH": str(tmp_path / "scratch")}
    process = subprocess.Popen(
        [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job), "--weights",
         str(FIXTURES / "weights"), "--device", "cpu", "--quiet", "--frames-dir", str(frames)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, result


def _finish(process: subprocess.Popen[bytes], result: Path) -> dict[str, Any]:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return json.loads(result.read_text())


def _saved_step(checkpoint: Path) -> int:
    """The step the checkpoint file says it holds (its safetensors header), 0 if none."""
    try:
        data = checkpoint.read_bytes()
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        return int(header["__metadata__"]["step"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def pose_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("poses") / "poses.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "8", "-i",
                    str(FIXTURES / "render_size" / "pose_%03d.png"), "-c:v", "ffv1",
                    "-pix_fmt", "bgr0", str(out)], check=True)
    return out


def test_killed_run_resumes_and_equals_an_uninterrupted_one(tmp_path: Path,
                                                            pose_video: Path) -> None:
    checkpoint = tmp_path / "ckpt" / "resume.safetensors"
    # Uninterrupted, with checkpoints saved along the way and removed at the end.
    whole = tmp_path / "whole"
    first = _finish(*_start(tmp_path, _job(tmp_path, pose_video, checkpoint), whole))
    assert first.get("resumedFromStep") is None
    assert not checkpoint.exists()

    # Killed as a node loss would kill it, once a few steps are saved.
    process, _ = _start(tmp_path, _job(tmp_path, pose_video, checkpoint), tmp_path / "lost")
    try:
        eventually("a checkpoint after 3 steps", lambda: _saved_step(checkpoint) >= 3,
                   timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = _saved_step(checkpoint)
    assert 3 <= killed_at < STEPS

    resumed_dir = tmp_path / "resumed"
    second = _finish(*_start(tmp_path, _job(tmp_path, pose_video, checkpoint), resumed_dir))
    assert second["resumedFromStep"] >= killed_at
    assert second["resumeSecondsSaved"] > 0
    assert not checkpoint.exists()  # cleaned after success
    expected = np.load(whole / "frames.npy")
    frames = np.load(resumed_dir / "frames.npy")
    assert np.array_equal(frames, expected)  # bit for bit


def test_checkpoint_of_other_settings_is_ignored(tmp_path: Path, pose_video: Path) -> None:
    checkpoint = tmp_path / "ckpt" / "other.safetensors"
    process, _ = _start(tmp_path, _job(tmp_path, pose_video, checkpoint, seed=4),
                        tmp_path / "lost")
    try:
        eventually("a checkpoint after 2 steps", lambda: _saved_step(checkpoint) >= 2,
                   timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # Another seed: the saved latents are of another video and must not be used.
    result = _finish(*_start(tmp_path, _job(tmp_path, pose_video, checkpoint, seed=5),
                             tmp_path / "other"))
    assert result.get("resumedFromStep") is None
    assert not checkpoint.exists()
