"""The runner's GPU code paths, run on the CPU with the tiny test weights (issue 34).

* lowerVram's model swapping runs on the CPU too (the same moves; they cost nothing there):
  every model works alone on the device, and the frames are those of a run without it;
* "float32" means IEEE float32: the runner turns TF32 off (cuBLAS and cuDNN) unless
  ``inference.allowTf32`` says otherwise (torch leaves cuDNN's on by default);
* host memory: no float32 copy of all the pose features is made unless a trace asks for
  one; the features stay in the model's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from musepose_runner.pipeline import load_pipeline
from musepose_runner.pipeline.musepose import window_features

pytestmark = pytest.mark.slow
WEIGHTS = Path(__file__).resolve().parents[1] / "parity" / "fixtures" / "weights"
SIZE, FRAMES = 64, 6


def _inputs() -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    poses = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(FRAMES)]
    return reference, poses


def _frames(pipeline: Any, trace: dict[str, np.ndarray] | None = None) -> np.ndarray:
    reference, poses = _inputs()
    return np.asarray(pipeline.animate(
        reference, poses, width=SIZE, height=SIZE, steps=2, context_frames=4,
        context_overlap=1, seed=5, trace=trace, pad=False))


def test_lower_vram_swaps_the_models_on_the_cpu_and_changes_no_frame() -> None:
    plain = _frames(load_pipeline(WEIGHTS, device="cpu", dtype="float32"))
    pipeline = load_pipeline(WEIGHTS, device="cpu", dtype="float32", lower_vram=True)
    models = {"reference": pipeline.reference, "denoising": pipeline.denoising.module,
              "guider": pipeline.guider, "vae": pipeline.vae, "encoder": pipeline.encoder}
    alone: dict[str, list[bool]] = {name: [] for name in models}
    moves: list[str] = []

    def watch(name: str, model: torch.nn.Module) -> None:
        def hook(*_: object) -> None:
            alone[name].append(pipeline.working is model)

        runs = [model.encoder, model.decoder] if name == "vae" else [model]
        for part in runs:
            part.register_forward_pre_hook(hook)
        real_to = model.to

        def to(*args: Any, **kwargs: Any) -> Any:
            moves.append(name)
            return real_to(*args, **kwargs)

        model.to = to  # type: ignore[method-assign]

    for name, model in models.items():
        watch(name, model)
    swapped = _frames(pipeline)
    assert all(alone.values()) and all(all(seen) for seen in alone.values()), alone
    assert set(moves) == set(models)  # each was moved in (and the others out) on the CPU
    assert np.array_equal(swapped.view(np.uint32), plain.view(np.uint32))


@pytest.mark.parametrize("allow", [False, True])
def test_the_runner_sets_tf32_as_the_setting_says(allow: bool) -> None:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not allow
        load_pipeline(WEIGHTS, device="cpu", dtype="float32", allow_tf32=allow)
        assert torch.backends.cuda.matmul.allow_tf32 is allow
        assert torch.backends.cudnn.allow_tf32 is allow
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def test_tf32_is_off_by_default_in_the_job_document() -> None:
    from musepose_runner.contract.job_spec import InferenceSettings

    assert InferenceSettings().allow_tf32 is False
    assert InferenceSettings.model_validate({"allowTf32": True}).allow_tf32 is True


class _Float32Shapes(TorchDispatchMode):
    """The shapes of every float32 tensor an operation makes."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32:
                self.shapes.add(tuple(tensor.shape))
        return out


def test_no_float32_copy_of_the_pose_features_unless_traced() -> None:
    """In bfloat16, the whole video's pose features (1, c, frames, h/8, w/8) never exist
    as float32 (about 3.5 GB at 768² x 300 frames), except for a trace that asks."""
    pipeline = load_pipeline(WEIGHTS, device="cpu", dtype="bfloat16")
    channels = pipeline.guider(torch.zeros((1, 3, SIZE, SIZE), dtype=torch.bfloat16)).shape[1]
    full = (1, channels, FRAMES, SIZE // 8, SIZE // 8)
    with _Float32Shapes() as untraced:
        _frames(pipeline)
    assert full not in untraced.shapes
    trace: dict[str, np.ndarray] = {}
    with _Float32Shapes() as traced:
        _frames(pipeline, trace)
    assert full in traced.shapes and trace["pose_features"].shape == full


def test_a_window_of_pose_features_on_the_cpu_is_those_frames() -> None:
    """The pinned-memory copy is for CUDA; on the CPU a window is its frames, wrapping."""
    features = torch.arange(2 * 5 * 2 * 2, dtype=torch.float16).reshape(1, 2, 5, 2, 2)
    window = window_features(features, [3, 4, 0], torch.device("cpu"))
    assert torch.equal(window, torch.cat([features[:, :, 3:5], features[:, :, :1]], dim=2))
