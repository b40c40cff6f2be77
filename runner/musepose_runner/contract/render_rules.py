"""Rules about a run's render size that the operator and the runner share. Pure.

``lowerVram`` (and the out-of-memory fallback) renders at 512 px: MusePose's default square
768x768 becomes 512x512, exactly as before per-request sizes existed; a request's own size
keeps its aspect, its longer side brought down to 512 (multiples of 8, as the model needs).
"""

from __future__ import annotations

from musepose_runner.contract.location_rules import LOWER_VRAM_SIZE

SIZE_STEP = 8  # the VAE's downsampling: render sizes are multiples of it
MIN_SIZE = 64


def lower_vram_size(width: int, height: int) -> tuple[int, int]:
    """The render size lowerVram uses for a request of ``width`` x ``height``."""
    longer = max(width, height)
    if longer <= LOWER_VRAM_SIZE:
        return width, height
    scale = LOWER_VRAM_SIZE / longer

    def smaller(side: int) -> int:
        return max(MIN_SIZE, int(side * scale) // SIZE_STEP * SIZE_STEP)

    return smaller(width), smaller(height)
