"""The reference tokens' keys and values are projected once per video, not per call.

MusePose projects them again for every frame of every denoising call; the runner
projects the conditional half's bank entry once and broadcasts it (same frames: the
parity tests hold that)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "parity" / "fixtures"
CASE = "render_size"  # 8 frames in one window of 8, 4 steps, CFG


def test_each_video_projects_the_reference_once_per_block() -> None:
    from musepose_runner.pipeline import load_pipeline

    pipeline = load_pipeline(FIXTURES / "weights", device="cpu", dtype="float32")
    block = pipeline.denoising.module.down_blocks[0].attentions[0].transformer_blocks[0]
    reference_tokens: list[int] = []
    calls: list[int] = []

    def record(_: object, args: tuple[torch.Tensor, ...]) -> None:
        calls.append(1)
        if args[0].shape[0] == 1:  # the bank's single conditional entry, not a frame batch
            reference_tokens.append(args[0].shape[1])

    block.attn1.to_k.register_forward_pre_hook(record)
    folder = FIXTURES / CASE
    settings = json.loads((folder / "case.json").read_text())
    reference = np.asarray(Image.open(folder / "reference.png").convert("RGB"))
    poses = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("pose_*.png"))]
    for _ in range(2):  # two videos from the same pipeline
        pipeline.animate(reference, poses, width=settings["width"],
                         height=settings["height"], steps=settings["steps"],
                         guidance_scale=settings["cfg"], context_frames=settings["context"],
                         context_overlap=settings["overlap"], seed=settings["seed"],
                         pad=False)
    # 4 steps x 1 window = 4 UNet calls per video, each projecting its own frames' keys
    # for both CFG halves; the reference once per video (the bank is refilled per video).
    assert len(reference_tokens) == 2
    assert len(calls) == 2 * (4 * 2 + 1)
