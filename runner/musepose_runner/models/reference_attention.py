"""Reference attention: the denoising UNet's self-attention also looks at the reference image.

The reference UNet runs once on the reference image. In each of its spatial transformer
blocks, the input of ``attn1`` (the ``norm1`` output) is written to a bank. The denoising
UNet's block of the same name then uses keys and values from its own tokens concatenated
with the banked reference tokens, repeated for every frame. Blocks pair by module name,
which is the same pairing MusePose gets by sorting both UNets' blocks on channel width.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


class ReferenceBank:
    def __init__(self) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self.frames = 1  # frames per reference entry in the denoising batch

    def clear(self) -> None:
        self.features.clear()


class _Processor:
    def __init__(self, bank: ReferenceBank, name: str, writer: bool) -> None:
        self.bank, self.name, self.writer = bank, name, writer
        self.inner = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, **kwargs: object) -> torch.Tensor:
        if self.writer:
            self.bank.features[self.name] = hidden_states.detach()
        else:
            reference = self.bank.features.get(self.name)
            if reference is not None:
                reference = reference.repeat_interleave(self.bank.frames, dim=0)
                encoder_hidden_states = torch.cat([hidden_states, reference.to(hidden_states)],
                                                  dim=1)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask)


def transformer_blocks(unet: nn.Module) -> dict[str, BasicTransformerBlock]:
    return {name: module for name, module in unet.named_modules()
            if isinstance(module, BasicTransformerBlock)}


def install(unet: nn.Module, bank: ReferenceBank, *, writer: bool) -> int:
    """Route every spatial block's self-attention through the bank; returns how many."""
    blocks = transformer_blocks(unet)
    for name, block in blocks.items():
        block.attn1.set_processor(_Processor(bank, name, writer))
    return len(blocks)
