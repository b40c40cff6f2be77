"""NaN and infinity are refused, never saved or encoded (issue 34).

In float16 the VAE and the reference bank can overflow; the frames then come out NaN, and
8-bit conversion would turn them into a black video that looks like a success. The
latents are checked after every denoising step (before a checkpoint is saved) and the
decoded frames before they are clamped, so the first bad value ends the run with its own
code (exit 70, NonFinite). A run in float16/bfloat16 is then run again in the dtype
``inference.nonFiniteRetry`` names (float32 by default), once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from musepose_runner.contract.errors import NonFinite

if TYPE_CHECKING:
    from musepose_runner.distributed.group import Team


def require_finite(tensor: torch.Tensor, what: str) -> None:
    """Raise NonFinite naming ``what`` unless every value of ``tensor`` is finite."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise NonFinite(f"{what}: {bad} of {tensor.numel()} values are NaN or infinite "
                        f"in {str(tensor.dtype).removeprefix('torch.')}")


def require_finite_frames(video: np.ndarray) -> None:
    """The frames about to be encoded (worker 0's, all workers' shares gathered)."""
    if video.size and not bool(np.isfinite(video).all()):
        raise NonFinite(f"the decoded frames hold {int((~np.isfinite(video)).sum())} NaN or "
                        "infinite values: nothing was encoded")


def non_finite_retry(setting: str, dtype: torch.dtype, team: Team | None) -> str | None:
    """The dtype to run again in after a non-finite run in ``dtype``, or None (fail now):
    never from float32 or the setting's own dtype, never for a gang (its workers would
    have to agree; the gang fails with 70 and its Animation says why)."""
    if setting == "never" or team is not None or dtype == torch.float32:
        return None
    if str(dtype).removeprefix("torch.") == setting:
        return None
    return setting
