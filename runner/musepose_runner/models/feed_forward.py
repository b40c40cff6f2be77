"""Feed-forwards run on slices of their token batch, one slice after the other.

A feed-forward treats every token alone, so slicing the batch gives the same result; what
changes is memory: the GEGLU's 4×-wide hidden layer (and its gate and product) exists for
one slice at a time. Unsliced, that layer is the denoising UNet's peak on a GPU: 4.2 GiB
for one 48-frame window at 768² in fp16 (bench/gpu_memory.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from diffusers.models.attention import FeedForward
from torch import nn

# Tokens per slice: a 768² window's top level has 96 × 9,216 tokens, so a slice is about
# 1/54 of it (the GEGLU projection 80 MiB in fp16 instead of 4.2 GiB); GEMMs of this height
# still fill a GPU. Batches at most this large run whole.
ROWS_PER_SLICE = 1 << 14
# On the CPU, smaller slices lower the process's peak RSS at no cost in time (full-size
# step: 18.0 s in 4,096-token slices, 18.7 s whole; bitwise the same output).
CPU_ROWS_PER_SLICE = 1 << 12


def in_slices(whole: Any, hidden: torch.Tensor, *args: Any, rows: int = ROWS_PER_SLICE,
              **kwargs: Any) -> torch.Tensor:
    """``whole(hidden)`` computed on slices of at most ``rows`` tokens (all leading
    dimensions of ``hidden`` flattened; on the CPU at most ``CPU_ROWS_PER_SLICE``), one after
    the other."""
    if hidden.device.type == "cpu":
        rows = min(rows, CPU_ROWS_PER_SLICE)
    width = hidden.shape[-1]
    if hidden.numel() <= rows * width:
        out: torch.Tensor = whole(hidden, *args, **kwargs)
        return out
    tokens = hidden.reshape(-1, width)
    parts = [whole(part, *args, **kwargs) for part in tokens.split(rows)]
    return torch.cat(parts).reshape(*hidden.shape[:-1], parts[0].shape[-1])


def slice_feed_forwards(module: nn.Module, rows: int | None = ROWS_PER_SLICE) -> int:
    """Make every diffusers ``FeedForward`` inside ``module`` (the spatial blocks' and the
    motion modules') run in slices of ``rows`` tokens; ``None`` runs them whole again.
    Parameters and state-dict names are untouched. Returns how many were set."""
    count = 0
    for child in module.modules():
        if isinstance(child, FeedForward):
            if rows is None:
                child.__dict__.pop("forward", None)
            else:
                # An instance attribute: nn.Module.__call__ finds it before the class's.
                child.forward = partial(in_slices, partial(FeedForward.forward, child),
                                        rows=rows)
            count += 1
    return count
