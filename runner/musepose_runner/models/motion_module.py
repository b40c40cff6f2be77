"""Temporal motion modules (AnimateDiff's "Vanilla" module, as MusePose configures it).

Each module attends across frames at every spatial position: tokens are (batch × pixels,
frames, channels), with a sinusoidal frame-position encoding added before each of the two
self-attention blocks. ``proj_out`` starts at zero, so a fresh module is the identity.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

MAX_FRAMES = 128  # temporal_position_encoding_max_len in MusePose's inference config
HEADS = 8
ATTENTION_BLOCKS = 2  # attention_block_types: (Temporal_Self, Temporal_Self)


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal encoding, kept as the persistent buffer ``pe`` [1, max_len, dim]."""

    pe: torch.Tensor  # a buffer: (1, max_len, dim)

    def __init__(self, dim: int, max_len: int = MAX_FRAMES) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + self.pe[:, : tokens.shape[1]].to(tokens.dtype)


class TemporalAttention(Attention):
    """Self-attention over frames, with the frame-position encoding in front."""

    def __init__(self, dim: int) -> None:
        super().__init__(query_dim=dim, heads=HEADS, dim_head=dim // HEADS, bias=False,
                         out_bias=True)
        self.pos_encoder = PositionalEncoding(dim)

    def forward_frames(self, sequences: torch.Tensor) -> torch.Tensor:
        """``sequences``: (positions, frames, channels), one sequence over frames per
        spatial position."""
        out: torch.Tensor = super().forward(self.pos_encoder(sequences))
        return out


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalAttention(dim) for _ in range(ATTENTION_BLOCKS))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(ATTENTION_BLOCKS))
        self.ff = FeedForward(dim, dropout=0.0, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden``: (positions, frames, channels)."""
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            temporal = cast(TemporalAttention, attention)
            hidden = temporal.forward_frames(norm(hidden)) + hidden
        out: torch.Tensor = self.ff(self.ff_norm(hidden)) + hidden
        return out


class TemporalTransformer(nn.Module):
    def __init__(self, dim: int, norm_groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, dim, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(dim)])
        self.proj_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, sample: torch.Tensor, frames: int) -> torch.Tensor:
        """``sample``: (batch × frames, channels, height, width); returns the same shape."""
        bf, c, h, w = sample.shape
        batch = bf // frames
        # (b f) c h w → (b h w) f c once: attention needs a sequence over frames per spatial
        # position, and every other layer here treats tokens alone, so all work in this order.
        hidden = self.norm(sample).reshape(batch, frames, c, h * w).permute(0, 3, 1, 2)
        hidden = self.proj_in(hidden.reshape(-1, frames, c))
        for block in self.transformer_blocks:
            hidden = block(hidden)
        hidden = self.proj_out(hidden).reshape(batch, h * w, frames, c).permute(0, 2, 3, 1)
        return hidden.reshape(bf, c, h, w) + sample


NORM_GROUPS = 32  # MusePose's motion modules always use 32 groups, whatever the UNet's


class MotionModule(nn.Module):
    def __init__(self, dim: int, norm_groups: int = NORM_GROUPS) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(dim, norm_groups)

    def forward(self, sample: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(sample, frames)
