"""Out of memory, wherever it happens in a run, is exit 71: the one mapping (issue 34).

Allocation failures reach Python in several shapes: torch's own ``OutOfMemoryError`` (the
caching allocator, while moving the models to the GPU or mid-step), a plain RuntimeError
from a CUDA call that allocates behind the allocator's back ("CUDA error: out of memory"),
cuBLAS and cuDNN failing to allocate their workspaces, the CPU allocator refusing memory
(a plain RuntimeError too) and Python's MemoryError. All of them become ``OutOfMemory``
(exit 71, field lowerVram), so the operator may retry in lower-VRAM mode instead of
counting a transient failure and retrying at the same size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from musepose_runner.contract.errors import OutOfMemory
from musepose_runner.contract.job_spec import InferenceSettings

# What torch says when the CPU allocator is refused memory.
HOST_ALLOCATION_FAILED = "DefaultCPUAllocator: can't allocate memory"
# Substrings of the RuntimeErrors CUDA libraries raise when they cannot allocate.
DEVICE_ALLOCATION_FAILED = (
    "CUDA out of memory",  # the caching allocator (OutOfMemoryError's own text)
    "CUDA error: out of memory",  # cudaErrorMemoryAllocation from any CUDA call
    "CUBLAS_STATUS_ALLOC_FAILED",  # cuBLAS handle or workspace
    "CUDNN_STATUS_ALLOC_FAILED",  # cuDNN workspace (cuDNN 8)
    "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",  # cuDNN 9's name for it
    "HIP out of memory",  # ROCm builds of torch
)


def as_out_of_memory(err: BaseException, where: str) -> OutOfMemory | None:
    """``err`` as exit 71 (``where``: what the run was doing), or None if it is not an
    allocation failure."""
    import torch

    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, MemoryError) or HOST_ALLOCATION_FAILED in text:
        return OutOfMemory(f"the host ran out of memory {where}: {first}"[:400],
                           field="lowerVram")
    if isinstance(err, torch.OutOfMemoryError) or (
            isinstance(err, RuntimeError) and any(m in text for m in DEVICE_ALLOCATION_FAILED)):
        return OutOfMemory(f"the GPU ran out of memory {where}: {first}"[:400],
                           field="lowerVram")
    return None


def while_running(settings: InferenceSettings, rank: int = 0
                  ) -> contextlib.AbstractContextManager[None]:
    """``mapped``, saying what the run's models were doing: which worker of a shared run
    (``rank``, 0 for worker 0 or a run of its own), at what size and window."""
    worker = f"on worker {rank} " if rank else ""
    return mapped(f"{worker}at {settings.width}x{settings.height} with "
                  f"{settings.context_frames}-frame windows")


@contextlib.contextmanager
def mapped(where: str) -> Iterator[None]:
    """Any allocation failure inside becomes ``OutOfMemory``; anything else passes."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        mapped_error = as_out_of_memory(err, where)
        if mapped_error is None:
            raise
        raise mapped_error from None
