"""NaN or infinity from the model is refused, never encoded as a black video (issue 34).

Tiny-weights runs through ``musepose-runner run`` with a NaN forced into one module's
output: the pose guider's (so the latents go NaN at the first step) or the VAE decoder's
(the latents are fine, the frames are not). The run fails with its own code (70,
NonFinite) before anything is saved or encoded, or, from float16/bfloat16, runs again in
the dtype ``inference.nonFiniteRetry`` names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from musepose_runner.contract.job_spec import ExitCode
from tests.unit.test_runner_out_of_memory import _run

pytestmark = pytest.mark.slow


def _nan_from(monkeypatch: pytest.MonkeyPatch, module: str, dtypes: set[torch.dtype]
              ) -> list[torch.dtype]:
    """Every pipeline loaded gets NaN in ``module``'s output when it runs in one of
    ``dtypes``; the dtypes of the pipelines loaded, in order."""
    from musepose_runner import pipeline as pipelines

    real_load = pipelines.load_pipeline
    loaded: list[torch.dtype] = []

    def poison(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return torch.full_like(output, float("nan"))

    def load(*args: Any, **kwargs: Any) -> Any:
        pipeline = real_load(*args, **kwargs)
        loaded.append(pipeline.dtype)
        if pipeline.dtype in dtypes:
            target = pipeline.guider if module == "guider" else pipeline.vae.decoder
            target.register_forward_hook(poison)
        return pipeline

    monkeypatch.setattr(pipelines, "load_pipeline", load)
    return loaded


SMALL = {"width": 64, "height": 64, "steps": 2, "contextFrames": 8, "contextOverlap": 2}


def test_non_finite_latents_in_bfloat16_run_again_in_float32(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _nan_from(monkeypatch, "guider", {torch.bfloat16})
    code, result = _run(tmp_path, monkeypatch, "cpu", 8, dtype="bfloat16", **SMALL)
    assert (code, result["reason"]) == (ExitCode.OK, "Completed"), result
    assert loaded == [torch.bfloat16, torch.float32]
    assert (tmp_path / "out.mp4").exists()


def test_non_finite_latents_fail_with_70_naming_the_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _nan_from(monkeypatch, "guider", {torch.bfloat16})
    code, result = _run(tmp_path, monkeypatch, "cpu", 8, dtype="bfloat16",
                        nonFiniteRetry="never", **SMALL)
    assert (code, result["reason"]) == (ExitCode.NON_FINITE, "NonFinite"), result
    assert result["message"].startswith("the latents after denoising step 1:"), result
    assert loaded == [torch.bfloat16]
    assert not (tmp_path / "out.mp4").exists()


def test_non_finite_frames_in_float32_fail_with_70_and_nothing_is_encoded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 has nothing to fall back to: the run fails naming the frame."""
    loaded = _nan_from(monkeypatch, "decoder", {torch.float32})
    code, result = _run(tmp_path, monkeypatch, "cpu", 8, dtype="float32", **SMALL)
    assert (code, result["reason"]) == (ExitCode.NON_FINITE, "NonFinite"), result
    assert result["message"].startswith("decoded frame 0:"), result
    assert loaded == [torch.float32]
    assert not (tmp_path / "out.mp4").exists()
