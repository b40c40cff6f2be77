"""Rules about a run's render settings that the operator and the runner share. Pure.

``lowerVram`` (and the out-of-memory fallback) renders at 512 px: MusePose's default square
768x768 becomes 512x512, exactly as before per-request sizes existed; a request's own size
keeps its aspect, its longer side brought down to 512 (multiples of 8, as the model needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musepose_runner.contract.job_spec import InferenceSettings
from musepose_runner.contract.location_rules import LOWER_VRAM_SIZE

# InferenceSettings fields only a request's own size sets (merged_inference): not operator
# settings (the chart's settings.inference leaves them out).
REQUEST_ONLY_FIELDS = ("fit", "output_width", "output_height")
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


def lowered(width: int, height: int, *, sized: bool) -> tuple[int, int]:
    """lowerVram's render size: 512x512 for the operator's own size (as it always was), a
    request's own size (``sized``) scaled to 512 on its longer side, aspect kept."""
    return lower_vram_size(width, height) if sized else (LOWER_VRAM_SIZE, LOWER_VRAM_SIZE)


def merged_inference(base: InferenceSettings, requested: Mapping[str, Any], fit: str, *,
                     max_frames_bound: int = 0, lower_vram: bool = False
                     ) -> InferenceSettings:
    """A request's render settings (``requested``: InferenceSettings field names, None for
    unset) over ``base``. A request naming width or height gets the video at that size and
    ``fit``; ``max_frames_bound`` (0: none) lowers base's maxFrames when the request names
    none. Raises pydantic's ValidationError when the whole is invalid."""
    asked = {key: value for key, value in requested.items() if value is not None}
    values: dict[str, Any] = {**base.model_dump(), **asked}
    sized = "width" in asked or "height" in asked
    # Only a request's own size sets these; base's (an operator's settings) never do.
    values.update(fit="stretch", output_width=None, output_height=None)
    if sized:
        values.update(fit=fit, output_width=values["width"], output_height=values["height"])
    if max_frames_bound and "max_frames" not in asked:
        values["max_frames"] = min(values["max_frames"], max_frames_bound)
    if lower_vram:
        values["width"], values["height"] = lowered(values["width"], values["height"],
                                                    sized=sized)
    return InferenceSettings.model_validate(values)
