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

The reference tokens' keys and values are the same for every step, window and frame: they
are projected once per video (on first use, for the half that attends to them) and
broadcast to the frames, where MusePose projects them again for every frame of every call.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn
from torch.nn import functional as F

BANK_DTYPE = torch.float16  # what MusePose's ReferenceAttentionControl.update() casts to


class ReferenceBank:
    """The reference UNet's self-attention inputs, by block name, and how to use them.

    ``frames``: frames per CFG half in the denoising batch. ``guided``: the batch is
    [unconditional, conditional] halves (classifier-free guidance on).
    """

    def __init__(self) -> None:
        self.features: dict[str, torch.Tensor] = {}
        # Keys and values of the banked tokens, by block name, as the reader projected them.
        self.projected: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.frames = 1
        self.guided = True

    def clear(self) -> None:
        self.features.clear()
        self.projected.clear()


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
        frames = self.bank.frames
        if not self.bank.guided:
            keys, values = self._projected(attn, reference, hidden_states.dtype)
            return self._attend(attn, hidden_states, _per_frame(keys, frames),
                                _per_frame(values, frames), attention_mask)
        # One bank entry per CFG half; only the conditional half attends to its entry.
        keys, values = self._projected(attn, reference[1:], hidden_states.dtype)
        uncond, cond = hidden_states.chunk(2)
        return torch.cat([
            self.inner(attn, uncond, None, attention_mask),
            self._attend(attn, cond, keys.expand(frames, -1, -1),
                         values.expand(frames, -1, -1), attention_mask)])

    def _projected(self, attn: Attention, reference: torch.Tensor, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The banked tokens' keys and values, projected on the first call of a video."""
        cached = self.bank.projected.get(self.name)
        if cached is None or cached[0].shape[0] != reference.shape[0]:
            tokens = reference.to(dtype)
            cached = (attn.to_k(tokens), attn.to_v(tokens))
            self.bank.projected[self.name] = cached
        return cached

    def _attend(self, attn: Attention, hidden: torch.Tensor, reference_keys: torch.Tensor,
                reference_values: torch.Tensor, attention_mask: torch.Tensor | None
                ) -> torch.Tensor:
        """Self-attention whose keys and values are the tokens' own followed by the
        reference's (already projected): what diffusers' processor computes with
        ``encoder_hidden_states = [hidden, reference]``, for this block's plain attention."""
        if not _plain(attn) or attention_mask is not None:
            raise ValueError(f"{self.name}: reference attention needs plain self-attention")
        batch = hidden.shape[0]
        query = attn.to_q(hidden)
        keys = torch.cat([attn.to_k(hidden), reference_keys], dim=1)
        values = torch.cat([attn.to_v(hidden), reference_values], dim=1)
        head_dim = keys.shape[-1] // attn.heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(query), heads(keys), heads(values))
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out


def _plain(attn: Attention) -> bool:
    """No norms, residual or rescaling inside the attention (SD 1.x's self-attention)."""
    return (attn.spatial_norm is None and attn.group_norm is None and attn.norm_q is None
            and attn.norm_k is None and not attn.residual_connection
            and attn.rescale_output_factor == 1.0)


def _per_frame(entries: torch.Tensor, frames: int) -> torch.Tensor:
    """Bank entries (one per CFG half, or one for all) → one per frame of the batch."""
    if entries.shape[0] == 1:
        return entries.expand(frames, -1, -1)
    return entries.repeat_interleave(frames, dim=0)


def transformer_blocks(unet: nn.Module) -> dict[str, BasicTransformerBlock]:
    return {name: module for name, module in unet.named_modules()
            if isinstance(module, BasicTransformerBlock)}


def install(unet: nn.Module, bank: ReferenceBank, *, writer: bool) -> int:
    """Route every spatial block's self-attention through the bank; returns how many."""
    blocks = transformer_blocks(unet)
    for name, block in blocks.items():
        block.attn1.set_processor(_Processor(bank, name, writer))
    return len(blocks)
