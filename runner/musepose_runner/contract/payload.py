"""The original endpoint's JSON payload → a JobSpec for a run on this machine.

Same rules as the endpoint: id, audio_file, output_path and reference_image are required;
watermark_width and watermark_offset must be > 0; the documented defaults apply. Same
output: the video looped to the audio, the watermark top-left, and with a reference_video
its own audio (audio_file is then unused, as there). Plain
paths are this machine's files (the data root is /). The operator converts the same model
to Animations (musepose_operator.admission.payload).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from musepose_runner.contract.job_spec import (
    AnimationRef,
    InferenceSettings,
    JobSpec,
    WatermarkJob,
)
from musepose_runner.contract.render_rules import merged_inference

# The payload's render settings: snake_case like its other fields, and named as the runner's
# InferenceSettings fields are (the spec's spec.render fields in camelCase).
RENDER_FIELDS = ("width", "height", "steps", "guidance_scale", "frame_skip", "fps",
                 "max_frames", "context_frames", "context_overlap")


class OriginalPayload(BaseModel):
    """The original endpoint's payload, with its required fields, defaults and bounds: the
    one model of it (the operator's converter and gateway and the runner's local runs)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    audio_file: str = Field(min_length=1)
    output_path: str = Field(min_length=1)
    reference_image: str = Field(min_length=1)
    reference_video: str | None = None
    motion_sequence: str | None = None
    seed: int = Field(1, ge=0)
    image_clip_duration: float = Field(5.0, gt=0)
    lower_vram: StrictBool = False
    watermark: StrictBool = True
    watermark_path: str | None = None
    watermark_width: int = Field(100, gt=0)
    watermark_offset: int = Field(20, gt=0)
    remove_background: StrictBool = False
    # -- optional render settings (an Animation's spec.render; absent: the defaults) --
    width: int | None = Field(None, description="Video width (spec.render.width).")
    height: int | None = Field(None, description="Video height (spec.render.height).")
    fit: Literal["letterbox", "stretch"] | None = Field(
        None, description="letterbox (default) or stretch (spec.render.fit).")
    steps: int | None = Field(None, description="Denoising steps (spec.render.steps).")
    guidance_scale: float | None = Field(None, description="spec.render.guidanceScale.")
    frame_skip: int | None = Field(None, description="spec.render.frameSkip.")
    fps: float | None = Field(None, description="Output fps, length kept (spec.render.fps).")
    max_frames: int | None = Field(None, description="spec.render.maxFrames.")
    context_frames: int | None = Field(None, description="spec.render.contextFrames.")
    context_overlap: int | None = Field(None, description="spec.render.contextOverlap.")

    def render_settings(self) -> dict[str, Any]:
        """The render settings it names, by InferenceSettings field name (fit aside)."""
        return {name: getattr(self, name) for name in RENDER_FIELDS
                if getattr(self, name) is not None}

    @field_validator("reference_video", "motion_sequence", "watermark_path", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: object) -> object:
        """An empty optional location is no location, as the original read it (falsy)."""
        return None if value == "" else value


class PayloadError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def default_watermark() -> str:
    return str(resources.files("musepose_runner") / "assets" / "watermark.png")


# JobSpec's own field names (and nested locations) → the payload's names, for messages.
_PAYLOAD_NAMES = {
    "reference_image": "reference_image", "reference_video": "reference_video",
    "motion_sequence": "motion_sequence", "audio": "audio_file", "output": "output_path",
    "seed": "seed", "image_clip_duration": "image_clip_duration",
    "lower_vram": "lower_vram", "remove_background": "remove_background",
    "watermark.image": "watermark_path", "watermark.width": "watermark_width",
    "watermark.offset": "watermark_offset", "watermark.enabled": "watermark",
    "watermark": "watermark", "id": "id",
    # The render settings' only whole-settings rule, and the size they set twice.
    "": "context_overlap", "output_width": "width", "output_height": "height",
}


def _absolute(name: str, value: str | None) -> str | None:
    """A plain path made absolute (``~`` and ``~user`` expanded); URLs are left alone."""
    if value is None or "://" in value:
        return value
    if "\x00" in value:
        raise PayloadError([f"{name}: contains a NUL byte"])
    try:
        return str(Path(value).expanduser().resolve())
    except (RuntimeError, OSError, ValueError) as err:  # ~nobody-here, loops, odd names
        raise PayloadError([f"{name}: cannot be used as a path: {err}"]) from None


def _problems(err: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for error in err.errors():
        loc = prefix + ".".join(str(p) for p in error["loc"])
        name = _PAYLOAD_NAMES.get(loc) or _PAYLOAD_NAMES.get(loc.split(".")[0]) or loc
        what = "is required" if error["type"] == "missing" else error["msg"]
        problem = f"{name or 'payload'}: {_snake(what.removeprefix('Value error, '))}"
        if problem not in problems:
            problems.append(problem)
    return problems


def _snake(message: str) -> str:
    """The payload's own names in a message about the render settings."""
    return message.replace("contextOverlap", "context_overlap").replace(
        "contextFrames", "context_frames")


# The runner's field names (as results name them) → the payload's.
JOB_TO_PAYLOAD = {
    "referenceImage": "reference_image", "referenceVideo": "reference_video",
    "motionSequence": "motion_sequence", "audio": "audio_file", "output": "output_path",
    "watermark.image": "watermark_path", "imageClipDuration": "image_clip_duration",
}


class _HugeNumber(str):
    """A JSON integer too long to convert: the field it sits in reports it."""


def _parse_int(digits: str) -> int | _HugeNumber:
    return int(digits) if len(digits) <= 30 else _HugeNumber(f"a {len(digits)}-digit number")


def payload_to_job(text: str, **inference: Any) -> JobSpec:
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as err:
        raise PayloadError([f"payload: not valid JSON: {err.msg} at line {err.lineno}"]) from None
    except (ValueError, RecursionError) as err:  # a 5000-digit number, absurd nesting
        raise PayloadError([f"payload: not usable JSON: {err}"[:300]]) from None
    if not isinstance(data, dict):
        raise PayloadError(["payload: must be a JSON object"])
    try:
        payload = OriginalPayload.model_validate(data)
    except ValidationError as err:
        raise PayloadError(_problems(err)) from None
    try:
        watermark = WatermarkJob(
            enabled=payload.watermark,
            image=_absolute("watermark_path", payload.watermark_path) or default_watermark(),
            width=payload.watermark_width, offset=payload.watermark_offset,
            position="top-left",
        ) if payload.watermark else WatermarkJob(enabled=False)
    except ValidationError as err:
        raise PayloadError(_problems(err, "watermark.")) from None
    try:
        inference["inference"] = merged_inference(
            inference.get("inference") or InferenceSettings(), payload.render_settings(),
            payload.fit or "letterbox")
    except ValidationError as err:
        raise PayloadError(_problems(err)) from None
    try:
        return JobSpec(
            animation=AnimationRef(namespace="local", name=payload.id),
            reference_image=_absolute("reference_image", payload.reference_image) or "",
            reference_video=_absolute("reference_video", payload.reference_video),
            motion_sequence=_absolute("motion_sequence", payload.motion_sequence),
            audio=(None if payload.reference_video else
                   _absolute("audio_file", payload.audio_file)),
            audio_fit="loop",
            output=_absolute("output_path", payload.output_path) or "",
            seed=payload.seed, image_clip_duration=payload.image_clip_duration,
            lower_vram=payload.lower_vram, remove_background=payload.remove_background,
            watermark=watermark, **inference,
        )
    except ValidationError as err:
        raise PayloadError(_problems(err)) from None
