"""The pose guider: pose images → features added to the denoising UNet's conv_in output."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_BLOCK_CHANNELS = (16, 32, 96, 256)


class PoseGuider(nn.Module):
    """conv_in, then per stage a same-size conv and a stride-2 conv, then a zero-init conv_out.

    Three stride-2 convs take 512×512 poses to the 64×64 latent grid.
    """

    def __init__(self, embedding_channels: int = 320, conditioning_channels: int = 3,
                 block_out_channels: tuple[int, ...] = DEFAULT_BLOCK_CHANNELS) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], 3, padding=1)
        blocks = []
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:], strict=True):
            blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(block_out_channels[-1], embedding_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None  # a Conv2d has a bias unless told not to
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        """``poses``: (n, 3, H, W) in [0, 1] → (n, embedding_channels, H/8, W/8)."""
        hidden = F.silu(self.conv_in(poses))
        for block in self.blocks:
            hidden = F.silu(block(hidden))
        return self.conv_out(hidden)
