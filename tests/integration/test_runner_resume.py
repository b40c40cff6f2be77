"""A runner killed mid-denoising resumes from its checkpoint and makes the same video; a
checkpoint of another video is never used; saves keep to minIntervalSeconds.

The video has 12 frames in two overlapping context windows (the second wraps to the first
frames), so a resume continues every window. The runner runs as a process, as in a pod;
SIGKILL stands for a node loss or preemption. The baseline is a run with checkpoints off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.harness.processes import eventually
from tests.integration.test_runner_parallel import run_key_file
from tests.parity.test_pipeline_parity import FIXTURES

pytestmark = pytest.mark.slow
STEPS = 8
CASE = FIXTURES / "long_wrapped"  # 12 pose frames; windows of 8 overlapping by 2: two
INFERENCE = {"width": 64, "height": 64, "steps": STEPS, "contextFrames": 8,
             "contextOverlap": 2, "frameSkip": 0, "dtype": "float32"}


def _job(tmp_path: Path, poses: Path, checkpoint: Path | None, *, seed: int = 3,
         reference: Path = CASE / "reference.png", **inference: Any) -> Path:
    job: dict[str, Any] = {
        "animation": {"namespace": "test", "name": "resume", "uid": "u-1"},
        "referenceImage": str(reference),
        "motionSequence": str(poses),
        "output": str(tmp_path / f"out-{seed}-{time.monotonic_ns()}.mp4"),
        "seed": seed,
        "watermark": {"enabled": False},
        "inference": {**INFERENCE, **inference},
    }
    if checkpoint is not None:
        job["checkpoint"] = {"location": str(checkpoint)}
    path = tmp_path / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    return path


def _start(tmp_path: Path, job: Path, frames: Path, weights: Path = FIXTURES / "weights",
           key: str | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """The runner as a pod runs it; ``key``: the run key's file (default: the one every
    run of this module shares, as the pods of one Job do)."""
    result = tmp_path / f"result-{time.monotonic_ns()}.json"
    # One thread: the same sums in every run, and no contention on a shared machine.
    env = {**os.environ, "MUSEPOSE_RESULT_PATH": str(result), "MUSEPOSE_DATA_ROOT": "/",
           "MUSEPOSE_SCRATCH": str(tmp_path / "scratch"), "OMP_NUM_THREADS": "1",
           "MUSEPOSE_RUN_KEY_FILE": key or run_key_file()}
    process = subprocess.Popen(
        [sys.executable, "-m", "musepose_runner.cli", "run", "--spec", str(job), "--weights",
         str(weights), "--device", "cpu", "--quiet", "--frames-dir", str(frames)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, result


def _finish(process: subprocess.Popen[bytes], result: Path, log: list[str] | None = None
            ) -> dict[str, Any]:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr.decode()[-2000:]
    if log is not None:
        log.append(stderr.decode(errors="replace"))
    return dict(json.loads(result.read_text()))


def _saved_step(checkpoint: Path) -> int:
    """The step the checkpoint file says it holds (its safetensors header), 0 if none."""
    try:
        data = checkpoint.read_bytes()
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        return int(header["__metadata__"]["step"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def pose_video(workdir: Path) -> Path:
    out = workdir / "poses.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "8", "-i",
                    str(CASE / "pose_%03d.png"), "-c:v", "ffv1", "-pix_fmt", "bgr0", str(out)],
                   check=True)
    return out


@pytest.fixture(scope="module")
def baseline(workdir: Path, pose_video: Path) -> np.ndarray:
    """The frames of an uninterrupted run with checkpoints off."""
    frames = workdir / "baseline"
    result = _finish(*_start(workdir, _job(workdir, pose_video, None), frames))
    assert result.get("resumedFromStep") is None
    return np.load(frames / "frames.npy")


@pytest.fixture(scope="module")
def killed(workdir: Path, pose_video: Path) -> tuple[bytes, int]:
    """A run killed as a node loss would kill it, once 3 steps are saved: its checkpoint
    file's bytes and the step it holds."""
    checkpoint = workdir / "killed" / "resume.safetensors"
    process, _ = _start(workdir, _job(workdir, pose_video, checkpoint), workdir / "lost")
    try:
        eventually("a checkpoint after 3 steps", lambda: _saved_step(checkpoint) >= 3,
                   timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    step = _saved_step(checkpoint)
    assert 3 <= step < STEPS
    return checkpoint.read_bytes(), step


def _checkpoint_at(tmp_path: Path, killed: tuple[bytes, int]) -> Path:
    """The killed run's checkpoint, where the next run of the same job looks for it."""
    checkpoint = tmp_path / "ckpt" / "resume.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(killed[0])
    return checkpoint


def test_killed_run_resumes_and_equals_an_uninterrupted_one(
        tmp_path: Path, pose_video: Path, baseline: np.ndarray,
        killed: tuple[bytes, int]) -> None:
    checkpoint = _checkpoint_at(tmp_path, killed)
    frames = tmp_path / "resumed"
    result = _finish(*_start(tmp_path, _job(tmp_path, pose_video, checkpoint), frames))
    assert result["resumedFromStep"] == killed[1]
    assert result["resumeSecondsSaved"] > 0
    assert not checkpoint.exists()  # cleaned after success
    assert np.array_equal(np.load(frames / "frames.npy"), baseline)  # bit for bit


def _changed_weights(tmp_path: Path) -> Path:
    """A copy of the weights with one value of the CLIP image encoder changed (a float in
    the safetensors data, the file otherwise the same)."""
    weights = tmp_path / "weights"
    shutil.copytree(FIXTURES / "weights", weights)
    path = weights / "image_encoder" / "model.safetensors"
    data = bytearray(path.read_bytes())
    at = 8 + int.from_bytes(data[:8], "little") + 64
    data[at:at + 4] = np.float32(0.25).tobytes()
    path.write_bytes(bytes(data))
    return weights


def _changed_reference(tmp_path: Path) -> Path:
    image = np.asarray(Image.open(CASE / "reference.png").convert("RGB")).copy()
    image[10, 10] = 255 - image[10, 10]  # one pixel
    path = tmp_path / "reference.png"
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("change", ["weights", "input pixels", "settings", "seed"])
def test_a_checkpoint_of_another_video_is_not_used(
        tmp_path: Path, pose_video: Path, killed: tuple[bytes, int], change: str) -> None:
    checkpoint = _checkpoint_at(tmp_path, killed)
    weights = _changed_weights(tmp_path) if change == "weights" else FIXTURES / "weights"
    fields: dict[str, Any] = {
        "input pixels": {"reference": _changed_reference(tmp_path)},
        "settings": {"guidanceScale": 3.0},
        "seed": {"seed": 4},
    }.get(change, {})
    job = _job(tmp_path, pose_video, checkpoint, **fields)
    result = _finish(*_start(tmp_path, job, tmp_path / "frames", weights))
    assert result.get("resumedFromStep") is None, (change, result)
    assert not checkpoint.exists()


def _forged(tmp_path: Path, killed: tuple[bytes, int], case: str) -> tuple[Path, str | None]:
    """The killed run's checkpoint, forged as ``case`` says (its genuine metadata kept),
    and the key file the next run gets (None: the module's)."""
    import torch
    from safetensors.torch import load, save

    from musepose_runner.contract.run_key import RunKey
    from musepose_runner.run.resume import _signature

    data = killed[0]
    meta = dict(json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"])
    latents = load(data)["latents"]
    key = None
    if case == "nan-latents":  # the genuine metadata and signature, NaN latents
        latents = torch.full_like(latents, float("nan"))
    elif case == "nan-at-the-last-step-signed":  # as if the run's key had signed NaN
        latents = torch.full_like(latents, float("nan"))
        meta["step"] = str(STEPS - 1)
        meta["mac"] = _signature(RunKey(Path(run_key_file()).read_bytes()), meta, latents)
    elif case == "wrong-mac":  # the genuine checkpoint, one digit of its HMAC changed
        meta["mac"] = meta["mac"][:-1] + ("0" if meta["mac"][-1] != "0" else "1")
    elif case == "unsigned":
        del meta["mac"]
    elif case == "another-run's-key":  # genuine, but the next run is another Job's
        other = tmp_path / "other-key"
        other.write_bytes(os.urandom(32))
        key = str(other)
    checkpoint = tmp_path / "ckpt" / "resume.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(save({"latents": latents.contiguous()}, metadata=meta))
    return checkpoint, key


@pytest.mark.parametrize("case", ["nan-latents", "nan-at-the-last-step-signed", "wrong-mac",
                                  "unsigned", "another-run's-key"])
def test_a_forged_checkpoint_is_not_resumed_from(
        tmp_path: Path, pose_video: Path, baseline: np.ndarray, killed: tuple[bytes, int],
        case: str) -> None:
    checkpoint, key = _forged(tmp_path, killed, case)
    frames = tmp_path / "frames"
    log: list[str] = []
    result = _finish(*_start(tmp_path, _job(tmp_path, pose_video, checkpoint), frames,
                             key=key), log=log)
    assert result.get("resumedFromStep") is None, result
    why = ("not all finite" if case == "nan-at-the-last-step-signed"
           else "is not signed with this run's key")
    assert why in log[0] and "removed, starting from step 0" in log[0], log[0][-2000:]
    assert np.array_equal(np.load(frames / "frames.npy"), baseline)  # a whole, real video
    assert not checkpoint.exists()


class _Steps:
    """A progress reporter that sees each denoising step end (after the runner decided
    whether to save it) and notes when the checkpoint file was replaced. Each step is made
    to last at least STEP_SECONDS: the time the interval is measured against."""

    STEP_SECONDS = 0.5

    def __init__(self, checkpoint: Path) -> None:
        from musepose_runner.run.progress import Reporter

        self.reporter = Reporter(quiet=True)
        self.checkpoint = checkpoint
        self.saves: list[tuple[int, float]] = []  # (step, when)
        self._file: tuple[int, int] | None = None
        self._step_started = time.monotonic()

    def advance(self, done: int, total: int, **kwargs: Any) -> None:
        try:
            stat = self.checkpoint.stat()
            file = (stat.st_ino, stat.st_mtime_ns)
        except FileNotFoundError:
            file = None
        now = time.monotonic()
        if file is not None and file != self._file:
            self.saves.append((done, now))
        self._file = file
        # Slow steps: the interval, not the machine's speed, must decide what is saved.
        time.sleep(max(0.0, self.STEP_SECONDS - (now - self._step_started)))
        self._step_started = time.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reporter, name)


@pytest.fixture
def runner_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import torch

    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_saves_keep_to_the_minimum_interval(tmp_path: Path, pose_video: Path,
                                            runner_env: None) -> None:
    from musepose_runner.contract.job_spec import JobSpec
    from musepose_runner.run.stages import run_job

    steps, interval = 12, 2.0  # four steps of at least STEP_SECONDS between saves
    checkpoint = tmp_path / "ckpt" / "interval.safetensors"
    document = json.loads(_job(tmp_path, pose_video, checkpoint, steps=steps).read_text())
    document["checkpoint"].update(everySteps=1, minIntervalSeconds=interval)
    seen = _Steps(checkpoint)
    result = run_job(JobSpec.model_validate(document), weights_dir=FIXTURES / "weights",
                     device="cpu", reporter=seen)  # type: ignore[arg-type]
    assert result.succeeded, result
    saved = [step for step, _ in seen.saves]
    assert saved, f"no checkpoint saved in {steps} steps of {_Steps.STEP_SECONDS} s or more"
    assert len(saved) < steps - 1, f"saved after steps {saved}: every step, as with 0 s"
    when = [at for _, at in seen.saves]
    assert all(b - a >= interval - 0.05 for a, b in zip(when, when[1:], strict=False)), (
        seen.saves)
