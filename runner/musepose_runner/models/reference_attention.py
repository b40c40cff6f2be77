"""Reference attention: the denoising UNet's self-attention also looks at the reference image.

The reference UNet runs once on the reference image. In each of its spatial transformer
blocks, the input of ``attn1`` (the ``norm1`` output) is written to a bank. The denoising
UNet's block of the same name then takes keys and values from its own tokens followed by
the banked reference tokens of the same CFG half, for every frame. Blocks pair by module
name, which is the pairing MusePose gets by sorting both UNets' blocks on channel width
(both lists are in the same depth-first order, and the sort is stable).

Two details of MusePose's ``ReferenceAttentionControl`` decide the numbers:

- the bank is handed to the denoising UNet as float16, even in float32 inference, so the
  reference tokens carry fp16 rounding;
- with classifier-free guidance, the unconditional half of the batch attends to its own
  tokens only: MusePose computes it with the reference and then overwrites it with plain
  self-attention. Here it is computed once, without the reference.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

BANK_DTYPE = torch.float16  # what MusePose's ReferenceAttentionControl.update() casts to


class ReferenceBank:
    """The reference UNet's self-attention inputs, by block name, and how to use them.

    ``frames``: frames per CFG half in the denoising batch. ``guided``: the batch is
    [unconditional, conditional] halves (classifier-free guidance on).
    """

    def __init__(self) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self.frames = 1
        self.guided = True

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
            self.bank.features[self.name] = hidden_states.detach().to(BANK_DTYPE)
            return self.inner(attn, hidden_states, None, attention_mask)
        reference = self.bank.features.get(self.name)
        if reference is None:
            return self.inner(attn, hidden_states, None, attention_mask)
        # One bank entry per CFG half, repeated for each of that half's frames.
        reference = reference.to(hidden_states.dtype).repeat_interleave(self.bank.frames, dim=0)
        if not self.bank.guided:
            keys = torch.cat([hidden_states, reference], dim=1)
            return self.inner(attn, hidden_states, keys, attention_mask)
        uncond, cond = hidden_states.chunk(2)
        cond_keys = torch.cat([cond, reference.chunk(2)[1]], dim=1)
        return torch.cat([self.inner(attn, uncond, None, attention_mask),
                          self.inner(attn, cond, cond_keys, attention_mask)])


def transformer_blocks(unet: nn.Module) -> dict[str, BasicTransformerBlock]:
    return {name: module for name, module in unet.named_modules()
            if isinstance(module, BasicTransformerBlock)}


def install(unet: nn.Module, bank: ReferenceBank, *, writer: bool) -> int:
    """Route every spatial block's self-attention through the bank; returns how many."""
    blocks = transformer_blocks(unet)
    for name, block in blocks.items():
        block.attn1.set_processor(_Processor(bank, name, writer))
    return len(blocks)
