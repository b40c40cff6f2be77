"""Peak GPU memory of a run, estimated from its settings before any model is loaded. Pure.

The figures come from ``bench/gpu_memory.py``, which traces the runner's real full-size
graph on the meta device in fp16 (every tensor's life, attention as CUDA's memory-efficient
kernels run it): 4.78 GiB of weights, and activations that grow with the frames of one
context window times its pixels (8.92 GiB at 768² × 48 frames, 3.96 GiB at 512² × 48: the
same 338 bytes per frame-pixel; feed-forwards in slices, pose features and decoded frames in
host memory, so not with the video's length). The CUDA context and the allocator's reserve
come on top: ``HEADROOM`` covers them. A run is judged by the GPU's free memory
(``torch.cuda.mem_get_info``), not its total: a shared GPU or a MIG slice gives what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from musepose_runner.contract.location_rules import LOWER_VRAM_SIZE
from musepose_runner.contract.render_rules import lower_vram_size

GIB = 1024**3
WEIGHTS_FP16 = 4.78 * GIB  # both UNets, motion modules, pose guider, VAE, CLIP
LARGEST_MODEL_FP16 = 2.45 * GIB  # the denoising UNet: what lowerVram keeps on the GPU
ACTIVATION_BYTES_PER_FRAME_PIXEL_FP16 = 338.0
HEADROOM = 1.10  # CUDA context, cuBLAS workspaces, the caching allocator's reserve
# The attention kernel the activations were traced with (pipeline.gpu_settings logs when a
# run falls back to another, which needs more).
ATTENTION_KERNEL = "memory-efficient SDPA"


def peak_bytes(width: int, height: int, window_frames: int, *, dtype_bytes: int = 2,
               offloaded: bool = False) -> int:
    """The run's peak GPU memory: weights (all of them, or the largest model when offloaded
    as lowerVram runs) plus one context window's activations, with headroom."""
    scale = dtype_bytes / 2
    weights = (LARGEST_MODEL_FP16 if offloaded else WEIGHTS_FP16) * scale
    activations = ACTIVATION_BYTES_PER_FRAME_PIXEL_FP16 * window_frames * width * height * scale
    return int((weights + activations) * HEADROOM)


@dataclass(frozen=True)
class Fit:
    """What a GPU with ``total`` bytes free can do with a run: ``fits``; else whether the
    lower-VRAM fallback would (``fallback_fits``), and the figures for the message."""

    fits: bool
    fallback_fits: bool
    need: int
    fallback_need: int
    total: int

    def message(self, width: int, height: int, window_frames: int) -> str:
        return (f"this GPU has {self.total / GIB:.1f} GiB free; {width}x{height} with "
                f"{window_frames}-frame windows needs about {self.need / GIB:.1f} GiB, the "
                f"lower-VRAM mode ({LOWER_VRAM_SIZE}x{LOWER_VRAM_SIZE}, models offloaded) "
                f"about {self.fallback_need / GIB:.1f} GiB (with {ATTENTION_KERNEL} "
                "attention)")


def gpu_fit(total: int, width: int, height: int, window_frames: int, *, dtype_bytes: int,
            lower_vram: bool) -> Fit:
    need = peak_bytes(width, height, window_frames, dtype_bytes=dtype_bytes,
                      offloaded=lower_vram)
    fallback = peak_bytes(*lower_vram_size(width, height), window_frames,
                          dtype_bytes=dtype_bytes, offloaded=True)
    return Fit(need <= total, fallback <= total, need, fallback, total)
