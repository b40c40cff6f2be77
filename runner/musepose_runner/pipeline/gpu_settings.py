"""What the runner asks of torch on a GPU before any model runs (issue 34).

* TF32: torch leaves cuDNN's TF32 on by default (convolutions in float32 then round their
  inputs to 10-bit mantissas) and cuBLAS's off. The runner sets both from
  ``inference.allowTf32`` (default off), so "float32" on a GPU is IEEE float32, as on the
  CPU, and a comparison against the CPU's frames means the same on both.
* Attention: the memory estimate (musepose_runner.pipeline.memory_estimate) assumes torch's memory-efficient
  SDPA kernel. Where this GPU, dtype or build cannot run it, torch falls back to another
  (flash needs fp16/bf16, the math kernel holds the whole attention matrix): the runner
  logs that it fell back, since the estimate is then low.
"""

from __future__ import annotations

import logging
import warnings

import torch

from musepose_runner.pipeline.memory_estimate import ATTENTION_KERNEL as ASSUMED_ATTENTION_KERNEL

log = logging.getLogger(__name__)


def set_tf32(allow: bool) -> None:
    """TF32 for float32 matmuls (cuBLAS) and convolutions (cuDNN), on or off."""
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


def attention_fallback(device: torch.device, dtype: torch.dtype) -> str | None:
    """None when ``device`` runs the memory-efficient kernel at ``dtype``; else why not."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    probe = torch.zeros((1, 1, 8, 64), device=device, dtype=dtype)
    try:
        with warnings.catch_warnings(), sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            warnings.simplefilter("ignore")  # torch warns before it raises: said once, below
            torch.nn.functional.scaled_dot_product_attention(probe, probe, probe)
    except RuntimeError as err:
        return str(err).strip().splitlines()[0][:300] if str(err).strip() else "unavailable"
    return None


def log_attention_kernel(device: torch.device, dtype: torch.dtype) -> str | None:
    """Log which attention kernel the run gets; the fallback's reason, or None."""
    reason = attention_fallback(device, dtype)
    if reason is None:
        log.info("attention: %s, as the memory estimate assumes", ASSUMED_ATTENTION_KERNEL)
    else:
        log.warning("attention: the %s kernel the memory estimate assumes is unavailable "
                    "on %s in %s (%s): torch falls back to another kernel and the run may "
                    "need more memory than estimated", ASSUMED_ATTENTION_KERNEL, device,
                    str(dtype).removeprefix("torch."), reason)
    return reason
