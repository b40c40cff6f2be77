"""Several workers through ``musepose-runner run`` (issue 20): when peers are missing or lost.

* A worker that cannot meet its peers within the rendezvous deadline exits 75 naming what it
  waited for: worker 0's address, or the workers (and pods) that never came.
* A worker SIGKILLed mid-run ends the whole pod at once (its launcher exits 137, as the
  kernel's OOM kill shows), never a hang; the retry, as two pods of an Indexed Job, resumes
  from worker 0's checkpoint and writes the same float frames as one worker, bit for bit.
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

from tests.integration.test_runner_parallel import free_port, wait_all, worker_env
from tests.parity.test_pipeline_parity import FIXTURES

pytestmark = pytest.mark.slow
CASE = FIXTURES / "long_padded"
WEIGHTS = FIXTURES / "weights"
STEPS = 12


def _job(tmp_path: Path, parallel: dict[str, Any] | None) -> Path:
    poses = tmp_path / "poses.mkv"
    if not poses.exists():  # lossless, so the runner reads back the exact pose pixels
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "8", "-i",
                        str(CASE / "pose_%03d.png"), "-frames:v", "22", "-c:v", "ffv1",
                        "-pix_fmt", "bgr0", str(poses)], check=True)
    document: dict[str, Any] = {
        "animation": {"namespace": "test", "name": "parallel"},
        "referenceImage": str(CASE / "reference.png"), "motionSequence": str(poses),
        "output": str(tmp_path / "out" / "video.mp4"), "overwrite": True, "seed": 7,
        "watermark": {"enabled": False},
        "inference": {"width": 128, "height": 128, "steps": STEPS, "contextFrames": 8,
                      "contextOverlap": 2, "frameSkip": 0, "dtype": "float32"},
        "checkpoint": {"location": str(tmp_path / "checkpoint" / "latents.safetensors")},
    }
    if parallel is not None:
        document["parallel"] = parallel
    path = tmp_path / ("job-parallel.json" if parallel else "job.json")
    path.write_text(json.dumps(document))
    return path


def _runner(job: Path, result: Path, frames: Path | None = None, **env: str
            ) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job),
            "--weights", str(WEIGHTS), "--device", "cpu", "--quiet"]
    if frames is not None:
        args += ["--frames-dir", str(frames)]
    return subprocess.Popen(args, env={**worker_env(), "MUSEPOSE_RESULT_PATH": str(result),
                                       "MUSEPOSE_DATA_ROOT": "/",
                                       "MUSEPOSE_SCRATCH": str(result.parent / "scratch"),
                                       **env})


def _result(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_missing_peers_end_the_rendezvous_with_75_naming_them(tmp_path: Path) -> None:
    port = free_port()
    job = _job(tmp_path, {"workers": 3, "coordinator": "127.0.0.1", "port": port,
                          "rendezvousTimeoutSeconds": 3})
    # Pod 2 alone: worker 0 is not there. Then pod 0 alone: workers 1 and 2 never come.
    lonely = tmp_path / "lonely.json"
    code = wait_all([_runner(job, lonely, JOB_COMPLETION_INDEX="2")],
                    time.monotonic() + 300)
    leader = tmp_path / "leader.json"
    code += wait_all([_runner(job, leader, JOB_COMPLETION_INDEX="0")],
                     time.monotonic() + 300)
    assert code == [75, 75]
    first, second = _result(lonely), _result(leader)
    assert first["reason"] == second["reason"] == "RendezvousTimeout"
    assert f"worker 2 could not reach worker 0 at 127.0.0.1:{port}" in first["message"]
    assert "worker(s) 1, 2 (pod index 1, 2) that never arrived" in second["message"]


def _child(parent: int, local_rank: int) -> int:
    """The pid of the launcher's worker process with this local rank."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"MUSEPOSE_LOCAL_RANK={local_rank}".encode() in environ:
            return int(entry.name)
    raise LookupError(f"no worker process {local_rank} under {parent}")


def test_a_killed_worker_fails_the_run_and_the_retry_resumes_to_the_same_bits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from musepose_runner.cli import main

    # One worker, one thread, in this process: the frames to match.
    single = tmp_path / "single"
    single.mkdir()
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(single / "scratch"))
    monkeypatch.delenv("MUSEPOSE_RESULT_PATH", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "--spec", str(_job(single, None)), "--weights", str(WEIGHTS),
                     "--device", "cpu", "--quiet", "--frames-dir", str(single / "frames")]) == 0
    finally:
        torch.set_num_threads(threads)
    expected = np.load(single / "frames" / "frames.npy")

    # Two workers in one pod; worker 1 is SIGKILLed once worker 0 has saved a checkpoint.
    port = free_port()
    job = _job(tmp_path, {"workers": 2, "processesPerPod": 2, "port": port,
                          "rendezvousTimeoutSeconds": 120})
    checkpoint = tmp_path / "checkpoint" / "latents.safetensors"
    launcher = _runner(job, tmp_path / "killed.json")
    deadline = time.monotonic() + 600
    try:
        while not checkpoint.exists():
            assert launcher.poll() is None, "the run ended before a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint before the deadline"
            time.sleep(0.05)
        os.kill(_child(launcher.pid, 1), signal.SIGKILL)
        code = launcher.wait(timeout=120)  # ended, not hanging
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    killed = _result(tmp_path / "killed.json")
    assert code == 137, killed
    assert killed["reason"] == "WorkerKilled" and "worker 1 was killed by SIGKILL" in (
        killed["message"])
    assert checkpoint.exists()

    # The retry, as two pods of an Indexed Job (the checkpoint does not depend on how the
    # workers are packed): resumes from worker 0's checkpoint.
    job = _job(tmp_path, {"workers": 2, "processesPerPod": 1, "port": free_port(),
                          "rendezvousTimeoutSeconds": 120})
    pods = [_runner(job, tmp_path / f"pod{index}.json", tmp_path / "frames",
                    JOB_COMPLETION_INDEX=str(index)) for index in (0, 1)]
    assert wait_all(pods, time.monotonic() + 600) == [0, 0]
    done = _result(tmp_path / "pod0.json")
    assert done["succeeded"] and 1 <= done["resumedFromStep"] < STEPS
    assert _result(tmp_path / "pod1.json")["succeeded"]
    frames = np.load(tmp_path / "frames" / "frames.npy")
    assert frames.shape == expected.shape
    assert np.array_equal(frames.view(np.uint32), expected.view(np.uint32))
    assert not checkpoint.exists()  # worker 0 removed it with the video safe
