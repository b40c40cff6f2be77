"""The runner's out-of-memory paths, run through ``musepose-runner run`` up to the GPU:

- the pre-check, before any model is loaded, on a stated small card (torch.cuda answering
  for a GPU of that size): exit 71 OutOfMemory when the lower-VRAM fallback would fit, 78
  GpuTooSmall when not even that would;
- an allocation failure mid-denoising, raised as torch's own ``OutOfMemoryError`` (the type
  CUDA's allocator raises): exit 71 naming lowerVram, so the operator may retry in
  lower-VRAM mode;
- a real allocation failure on the CPU (torch's allocator refused a petabyte: a plain
  RuntimeError): the same exit 71, saying the host ran out of memory;
- every shape an allocation failure takes (torch's OutOfMemoryError, "CUDA error: out of
  memory", cuBLAS's and cuDNN's workspace failures, the CPU allocator), while the models
  load and mid-denoising, on worker 0 and on a peer: exit 71 (issue 34);
- the pre-check judges the GPU's free memory, not its total (a shared card).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from musepose_runner.cli import main
from musepose_runner.contract.job_spec import ExitCode
from musepose_runner.pipeline.memory_estimate import GIB
from musepose_runner.pose.keypoints import Pose, PoseSequence, dump_keypoint_file

pytestmark = pytest.mark.slow
WEIGHTS = Path(__file__).resolve().parents[1] / "parity" / "fixtures" / "weights"
REFERENCE = WEIGHTS.parent / "render_size" / "reference.png"


def _keypoints(path: Path, frames: int) -> Path:
    body = np.zeros((18, 3), np.float32)
    body[:, 2] = 1
    body[:, 0], body[:, 1] = np.linspace(20, 100, 18), np.linspace(10, 120, 18)
    path.write_text(dump_keypoint_file(PoseSequence(24.0, 128, 128, [Pose(body)] * frames)))
    return path


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str, frames: int,
         **inference: Any) -> tuple[int, dict[str, Any]]:
    job = {"animation": {"namespace": "test", "name": "oom", "uid": "u-1"},
           "referenceImage": str(REFERENCE),
           "motionSequence": str(_keypoints(tmp_path / "poses.json", frames)),
           "output": str(tmp_path / "out.mp4"), "watermark": {"enabled": False},
           "inference": {"frameSkip": 0, **inference}}
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job))
    result = tmp_path / "result.json"
    monkeypatch.setenv("MUSEPOSE_RESULT_PATH", str(result))
    monkeypatch.setenv("MUSEPOSE_DATA_ROOT", "/")
    monkeypatch.setenv("MUSEPOSE_SCRATCH", str(tmp_path))
    code = main(["run", "--spec", str(spec), "--weights", str(WEIGHTS), "--device", device,
                 "--quiet"])
    return code, json.loads(result.read_text())


def _a_card_of(monkeypatch: pytest.MonkeyPatch, gib: float, free: float | None = None
               ) -> list[str]:
    """torch.cuda answering for one GPU of ``gib`` GiB (``free`` of them free, all when
    None); loading any model fails the test."""
    loaded: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(
        name=f"a stated {gib:g} GiB card", total_memory=int(gib * GIB)))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (
        int((gib if free is None else free) * GIB), int(gib * GIB)))

    def no_loading(*args: object, **kwargs: object) -> None:
        loaded.append("load_pipeline")
        raise AssertionError("the pre-check let a run that does not fit load its models")

    monkeypatch.setattr("musepose_runner.pipeline.load_pipeline", no_loading)
    return loaded


@pytest.mark.parametrize(("gib", "code", "reason"), [
    (12, ExitCode.OUT_OF_MEMORY, "OutOfMemory"),  # 768² fp16 needs 15.1 GiB, the fallback 7.9
    (6, ExitCode.BAD_CONFIG, "GpuTooSmall"),  # not even the fallback fits
])
def test_the_pre_check_refuses_a_card_too_small_before_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gib: float, code: int,
        reason: str) -> None:
    loaded = _a_card_of(monkeypatch, gib)
    exit_code, result = _run(tmp_path, monkeypatch, "cuda", 48, width=768, height=768,
                             contextFrames=48, contextOverlap=4)
    assert (exit_code, result["reason"], result["field"]) == (code, reason, "lowerVram"), result
    assert result["message"].startswith(
        f"this GPU has {gib:.1f} GiB free; 768x768 with 48-frame windows needs"), result
    assert "memory-efficient SDPA attention" in result["message"]
    assert not loaded


def test_the_pre_check_judges_free_memory_not_the_total(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An 80 GiB card another process holds 70 GiB of: 768² fp16 (15.1 GiB) does not fit."""
    loaded = _a_card_of(monkeypatch, 80, free=10)
    exit_code, result = _run(tmp_path, monkeypatch, "cuda", 48, width=768, height=768,
                             contextFrames=48, contextOverlap=4)
    assert (exit_code, result["reason"]) == (ExitCode.OUT_OF_MEMORY, "OutOfMemory"), result
    assert result["message"].startswith("this GPU has 10.0 GiB free;"), result
    assert not loaded


def test_a_card_large_enough_passes_the_pre_check(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The same run on a 24 GiB card gets as far as loading the models."""
    loaded = _a_card_of(monkeypatch, 24)
    exit_code, result = _run(tmp_path, monkeypatch, "cuda", 48, width=768, height=768,
                             contextFrames=48, contextOverlap=4)
    assert loaded == ["load_pipeline"] and exit_code == ExitCode.INTERNAL_ERROR, result


class _RunsOutOfMemory:
    """The denoising UNet, whose second call fails to allocate: as CUDA's allocator does
    (``cuda``), or for real on the CPU (``host``)."""

    def __init__(self, inner: Any, where: str = "cuda",
                 error: BaseException | None = None) -> None:
        self.inner, self.module, self.calls, self.where = inner, inner.module, 0, where
        self.error = error or torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB")

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls == 2:
            if self.where == "host":
                torch.empty(2**50, dtype=torch.uint8)  # a petabyte: the allocator refuses
            raise self.error
        return self.inner(*args, **kwargs)


@pytest.mark.parametrize(("where", "what"), [("cuda", "GPU"), ("host", "host")])
def test_running_out_of_memory_mid_denoising_exits_71(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, what: str) -> None:
    from musepose_runner import pipeline as pipelines

    real_load = pipelines.load_pipeline
    denoisers: list[_RunsOutOfMemory] = []

    def load(*args: Any, **kwargs: Any) -> Any:
        loaded = real_load(*args, **kwargs)
        denoisers.append(_RunsOutOfMemory(loaded.denoising, where))
        loaded.denoising = denoisers[-1]
        return loaded

    monkeypatch.setattr(pipelines, "load_pipeline", load)
    exit_code, result = _run(tmp_path, monkeypatch, "cpu", 8, width=64, height=64, steps=2,
                             contextFrames=8, contextOverlap=2, dtype="float32")
    assert denoisers and denoisers[0].calls == 2
    assert (exit_code, result["reason"], result["field"]) == (
        ExitCode.OUT_OF_MEMORY, "OutOfMemory", "lowerVram"), result
    assert f"the {what} ran out of memory at 64x64 with 8-frame windows" in result["message"]
    assert not (tmp_path / "out.mp4").exists()


# The allocation failures as torch and the CUDA libraries word them (torch 2.x's messages).
ALLOCATION_FAILURES = {
    "allocator": (torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        "23.55 GiB of which 1.12 GiB is free."), "GPU"),
    "cuda-call": (RuntimeError(
        "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at "
        "some other API call"), "GPU"),
    "cublas": (RuntimeError(
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), "GPU"),
    "cudnn": (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), "GPU"),
    "cudnn9": (RuntimeError(
        "cuDNN Frontend error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED"), "GPU"),
    "host": (RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 1099511627776 bytes. Error code 12"), "host"),
}


@pytest.mark.parametrize("kind", sorted(ALLOCATION_FAILURES))
def test_running_out_of_memory_while_loading_the_models_exits_71(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Moving the models to the GPU is where a small card fails first (before: exit 1,
    retried at the same size)."""
    error, what = ALLOCATION_FAILURES[kind]

    def load(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr("musepose_runner.pipeline.load_pipeline", load)
    exit_code, result = _run(tmp_path, monkeypatch, "cpu", 8, width=64, height=64, steps=2,
                             contextFrames=8, contextOverlap=2, dtype="float32")
    assert (exit_code, result["reason"], result["field"]) == (
        ExitCode.OUT_OF_MEMORY, "OutOfMemory", "lowerVram"), result
    assert result["message"].startswith(f"the {what} ran out of memory at 64x64"), result


@pytest.mark.parametrize("kind", ["cuda-call", "cublas", "cudnn"])
def test_a_library_allocation_failure_mid_denoising_exits_71(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    from musepose_runner import pipeline as pipelines

    real_load = pipelines.load_pipeline
    error, _what = ALLOCATION_FAILURES[kind]

    def load(*args: Any, **kwargs: Any) -> Any:
        loaded = real_load(*args, **kwargs)
        loaded.denoising = _RunsOutOfMemory(loaded.denoising, error=error)
        return loaded

    monkeypatch.setattr(pipelines, "load_pipeline", load)
    exit_code, result = _run(tmp_path, monkeypatch, "cpu", 8, width=64, height=64, steps=2,
                             contextFrames=8, contextOverlap=2, dtype="float32")
    assert (exit_code, result["reason"]) == (ExitCode.OUT_OF_MEMORY, "OutOfMemory"), result
    assert not (tmp_path / "out.mp4").exists()


def test_any_other_runtime_error_is_not_taken_for_out_of_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def load(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("musepose_runner.pipeline.load_pipeline", load)
    exit_code, result = _run(tmp_path, monkeypatch, "cpu", 8, width=64, height=64, steps=2,
                             contextFrames=8, contextOverlap=2, dtype="float32")
    assert (exit_code, result["reason"]) == (ExitCode.INTERNAL_ERROR, "InternalError"), result


@pytest.mark.parametrize("kind", ["allocator", "cublas", "host"])
def test_a_peer_running_out_of_memory_while_loading_ends_with_71(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A worker other than 0 maps the same failures (the run_peer path), before it has
    heard from worker 0."""
    from musepose_runner.contract.job_spec import JobSpec
    from musepose_runner.run.stages import run_peer

    error, what = ALLOCATION_FAILURES[kind]

    def load(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr("musepose_runner.pipeline.load_pipeline", load)
    spec = JobSpec.model_validate({
        "animation": {"namespace": "test", "name": "oom"}, "referenceImage": "/in/ref.png",
        "output": "/out/video.mp4", "inference": {"width": 64, "height": 64}})
    result = run_peer(spec, weights_dir=WEIGHTS, device="cpu",
                      team=SimpleNamespace(rank=1, world=2))  # type: ignore[arg-type]
    assert (result.exit_code, result.reason, result.field) == (
        ExitCode.OUT_OF_MEMORY, "OutOfMemory", "lowerVram")
    assert result.message.startswith(f"the {what} ran out of memory on worker 1"), result
