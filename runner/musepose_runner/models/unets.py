"""The reference UNet and the denoising ("3-D") UNet, from diffusers' UNet2DConditionModel.

The denoising UNet keeps the exact module tree (and so the state-dict names) of the 2-D
UNet and adds ``motion_modules`` lists to its blocks. Frames are folded into the batch for
the spatial layers; forward hooks run the motion modules after each spatial layer (after
the attention where a block has one, else after the resnet), and add the pose features
after ``conv_in``. That is the computation of MusePose's UNet3DConditionModel with
inflated convolutions and group norms, without a copy of its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from musepose_runner.models.feed_forward import ROWS_PER_SLICE, slice_feed_forwards
from musepose_runner.models.motion_module import MotionModule
from musepose_runner.models.reference_attention import ReferenceBank, install


def reference_unet(config: Mapping[str, Any]) -> UNet2DConditionModel:
    """The 2-D UNet without its output head (MusePose never uses the reference's output)."""
    unet = UNet2DConditionModel.from_config(dict(config))
    unet.conv_norm_out = None
    unet.conv_out = nn.Identity()
    return unet


class DenoisingUNet:
    """Owns a 2-D UNet ``module`` inflated with motion modules; call it on 5-D latents.

    Every feed-forward (spatial and temporal) runs on slices of ``feed_forward_rows`` tokens
    (``None``: whole), which bounds the UNet's peak memory (models/feed_forward.py).
    """

    def __init__(self, config: Mapping[str, Any], bank: ReferenceBank, *,
                 feed_forward_rows: int | None = ROWS_PER_SLICE) -> None:
        self.module: UNet2DConditionModel = UNet2DConditionModel.from_config(dict(config))
        self.bank = bank
        self._frames = 1
        self._pose: torch.Tensor | None = None
        for block in [*self.module.down_blocks, self.module.mid_block, *self.module.up_blocks]:
            # Motion follows the attention where a block has one, else the resnet.
            layers = getattr(block, "attentions", None) or block.resnets
            block.motion_modules = nn.ModuleList(
                MotionModule(_channels(layer)) for layer in layers)
            for layer, motion in zip(layers, block.motion_modules, strict=True):
                layer.register_forward_hook(self._motion_hook(motion))
        self.module.conv_in.register_forward_hook(self._pose_hook)
        install(self.module, bank, writer=False)
        slice_feed_forwards(self.module, feed_forward_rows)

    def _motion_hook(self, motion: MotionModule) -> Any:
        def hook(_: nn.Module, __: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (motion(output[0], self._frames), *output[1:])
            return motion(output, self._frames)
        return hook

    def _pose_hook(self, _: nn.Module, __: Any, output: torch.Tensor) -> torch.Tensor:
        if self._pose is None:
            return output
        # (b f) c h w + (b' f) c h w, b' = 1 broadcast over the CFG halves.
        pose = self._pose.to(output)
        batched = output.reshape(-1, pose.shape[0], *output.shape[1:]) + pose
        return batched.reshape(output.shape)

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor | int,
                 encoder_hidden_states: torch.Tensor, pose_features: torch.Tensor | None
                 ) -> torch.Tensor:
        """``sample`` (b, c, f, h, w); ``pose_features`` (b, c', f, h, w) or (1, c', f, h, w)
        for all b → noise (b, c, f, h, w)."""
        b, c, f, h, w = sample.shape
        folded = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        self._frames = f
        self.bank.frames = f
        self._pose = None if pose_features is None else pose_features.permute(
            0, 2, 1, 3, 4).reshape(-1, pose_features.shape[1], h, w)
        try:
            out = self.module(folded, timestep,
                              encoder_hidden_states.repeat_interleave(f, dim=0),
                              return_dict=False)[0]
        finally:
            self._pose = None
        return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def _channels(layer: nn.Module) -> int:
    """Output channels of a spatial layer (a Transformer2DModel or a ResnetBlock2D)."""
    if hasattr(layer, "proj_out") and isinstance(layer.proj_out, nn.Conv2d | nn.Linear):
        proj = layer.proj_out
        return int(proj.out_channels if isinstance(proj, nn.Conv2d) else proj.out_features)
    return int(cast(nn.Conv2d, layer.conv2).out_channels)
