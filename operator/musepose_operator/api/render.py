"""spec.render: one Animation's own render settings (size, steps, guidance, frame rate,
length, context windows), each optional and defaulting to the operator's settings.inference.

The static bounds (the CRD's OpenAPI bounds and one CEL rule) are the runner contract's own
(``InferenceSettings``), read from it so the two never disagree; the operator's limits
(settings renderLimits, per namespace) are checked when the Animation is read
(admission.validation), since the API server cannot see them.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from musepose_runner.contract.job_spec import InferenceSettings

OVERLAP_MESSAGE = "contextOverlap must be smaller than contextFrames"


class RenderFit(enum.StrEnum):
    LETTERBOX = "letterbox"
    STRETCH = "stretch"


def _bounded(name: str, description: str) -> Any:
    """An optional field with the contract field ``name``'s bounds."""
    bounds: dict[str, Any] = {}
    for rule in InferenceSettings.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of"):
            if getattr(rule, key, None) is not None:
                bounds[key] = getattr(rule, key)
    return Field(None, description=description, **bounds)


class RenderSpec(BaseModel):
    """This Animation's render settings; each one left out is the operator's."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid",
        use_enum_values=True,
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "!(has(self.contextOverlap) && has(self.contextFrames)) || "
                    "self.contextOverlap < self.contextFrames",
            "message": OVERLAP_MESSAGE}]},
    )

    width: int | None = _bounded("width", (
        "Video width in pixels (64-2048, a multiple of 8). Width or height given: the video "
        "is delivered at width x height (the other from the operator's settings), see fit. "
        "Neither: the model renders at the operator's size and the video takes the pose "
        "source's size."))
    height: int | None = _bounded("height", (
        "Video height in pixels (64-2048, a multiple of 8); see width."))
    fit: RenderFit = Field(RenderFit.LETTERBOX, description=(
        "How the reference image and the pose frames meet a width x height of another "
        "aspect: letterbox (default) pads them with black to that aspect, keeping the whole "
        "dancer undistorted; stretch resizes them to it, as MusePose does. Nothing is ever "
        "cropped. Only used when width or height is given."))
    steps: int | None = _bounded("steps", "Denoising steps (MusePose: 20).")
    guidance_scale: float | None = _bounded("guidance_scale", (
        "Classifier-free guidance scale (MusePose's --cfg: 3.5)."))
    frame_skip: int | None = _bounded("frame_skip", (
        "Source frames skipped between rendered ones (MusePose's --skip: 1, every 2nd "
        "frame). The video plays at the source's fps / (frameSkip+1) and lasts as long as "
        "the source."))
    fps: float | None = _bounded("fps", (
        "Output frame rate. Default: the source's fps / (frameSkip+1). Given, the rendered "
        "frames are re-timed to it (repeated or dropped): the video keeps its length in "
        "seconds and its audio stays in sync."))
    max_frames: int | None = _bounded("max_frames", (
        "At most this many frames are rendered (MusePose's -L: 300); a longer source is "
        "cut."))
    context_frames: int | None = _bounded("context_frames", (
        "Frames per context window (MusePose's -S: 48)."))
    context_overlap: int | None = _bounded("context_overlap", (
        "Frames two context windows share (MusePose's -O: 4); below contextFrames."))

    @model_validator(mode="after")
    def _overlap_below_context(self) -> RenderSpec:
        if (self.context_frames is not None and self.context_overlap is not None
                and self.context_overlap >= self.context_frames):
            raise ValueError(OVERLAP_MESSAGE)
        return self

    def requested(self) -> dict[str, Any]:
        """The settings it names, as InferenceSettings field names (fit aside)."""
        return {k: v for k, v in self.model_dump(exclude={"fit"}).items() if v is not None}

    @property
    def sized(self) -> bool:
        return self.width is not None or self.height is not None
