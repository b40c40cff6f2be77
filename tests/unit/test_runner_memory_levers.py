"""The denoising UNet's memory levers keep the output: feed-forwards in slices give the
frames of feed-forwards run whole, bit for bit (a feed-forward treats every token alone).

The inputs are the parity fixture's (tests/parity/fixtures, made with MusePose's code).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "parity" / "fixtures"
CASE = "render_size"


@pytest.fixture(scope="module")
def pipeline() -> Iterator[object]:
    from musepose_runner.pipeline import load_pipeline

    yield load_pipeline(FIXTURES / "weights", device="cpu", dtype="float32")


def _widest_feed_forward_batch(module: torch.nn.Module) -> tuple[list[int], list[object]]:
    """Hooks recording the most tokens any feed-forward's first layer is given at once."""
    from diffusers.models.attention import FeedForward

    seen = [0]

    def record(_: object, args: tuple[torch.Tensor, ...]) -> None:
        seen[0] = max(seen[0], args[0].numel() // args[0].shape[-1])

    handles = [m.net[0].register_forward_pre_hook(record)
               for m in module.modules() if isinstance(m, FeedForward)]
    return seen, handles


def _run(pipeline: object) -> np.ndarray:
    folder = FIXTURES / CASE
    settings = json.loads((folder / "case.json").read_text())
    reference = np.asarray(Image.open(folder / "reference.png").convert("RGB"))
    poses = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("pose_*.png"))]
    frames: np.ndarray = pipeline.animate(  # type: ignore[attr-defined]
        reference, poses, width=settings["width"], height=settings["height"],
        steps=settings["steps"], guidance_scale=settings["cfg"],
        context_frames=settings["context"], context_overlap=settings["overlap"],
        seed=settings["seed"], pad=False)
    return frames


def test_feed_forwards_in_small_slices_give_the_same_frames_bit_for_bit(
        pipeline: object) -> None:
    from musepose_runner.models.feed_forward import ROWS_PER_SLICE, slice_feed_forwards

    unet = pipeline.denoising.module  # type: ignore[attr-defined]
    rows = 40  # far below this case's batches (up to 16 frames x 256 tokens)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixtures' setting; also quicker on a shared machine
    try:
        slice_feed_forwards(unet, None)
        whole = _run(pipeline)
        slice_feed_forwards(unet, rows)
        seen, handles = _widest_feed_forward_batch(unet)
        try:
            sliced = _run(pipeline)
        finally:
            for handle in handles:
                handle.remove()  # type: ignore[attr-defined]
    finally:
        slice_feed_forwards(unet, ROWS_PER_SLICE)
        torch.set_num_threads(threads)
    assert 0 < seen[0] <= rows, f"a feed-forward saw {seen[0]} tokens at once"
    assert sliced.dtype == whole.dtype and np.array_equal(sliced, whole), (
        f"sliced differs from whole by up to {np.abs(sliced - whole).max():.3g}")


def test_the_denoising_unet_slices_its_feed_forwards_by_default(pipeline: object) -> None:
    """A window too big for one slice (as at 768²) never reaches a feed-forward whole."""
    from diffusers.models.attention import FeedForward

    from musepose_runner.models.feed_forward import ROWS_PER_SLICE

    unet = pipeline.denoising.module  # type: ignore[attr-defined]
    feed_forwards = [m for m in unet.modules() if isinstance(m, FeedForward)]
    motion = [m for name, m in unet.named_modules()
              if isinstance(m, FeedForward) and "motion_modules" in name]
    assert motion and len(feed_forwards) > len(motion)  # spatial and temporal both
    seen, handles = _widest_feed_forward_batch(unet)
    try:
        with torch.inference_mode():
            for ff in feed_forwards:
                dim = ff.net[0].proj.in_features
                ff(torch.zeros(96, ROWS_PER_SLICE // 64, dim))  # 1.5 slices' worth
    finally:
        for handle in handles:
            handle.remove()  # type: ignore[attr-defined]
    assert 0 < seen[0] <= ROWS_PER_SLICE
