"""The original endpoint's JSON payload → a JobSpec for a run on this machine.

Same rules as the endpoint: id, audio_file, output_path and reference_image are required;
watermark_width and watermark_offset must be > 0; the documented defaults apply. Plain
paths are this machine's files (the data root is /). The operator has its own converter
to Animations (musepose_operator.convert); the runner may not import the operator.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from musepose_runner.contract import AnimationRef, JobSpec, WatermarkJob


class OriginalPayload(BaseModel):
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


class PayloadError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def default_watermark() -> str:
    return str(resources.files("musepose_runner") / "assets" / "watermark.png")


def _absolute(value: str | None) -> str | None:
    if value is None or "://" in value:
        return value
    return str(Path(value).expanduser().resolve())


def payload_to_job(text: str, **inference: Any) -> JobSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PayloadError([f"payload: not valid JSON: {err.msg} at line {err.lineno}"]) from None
    if not isinstance(data, dict):
        raise PayloadError(["payload: must be a JSON object"])
    try:
        payload = OriginalPayload.model_validate(data)
    except ValidationError as err:
        raise PayloadError([
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: "
            f"{'is required' if e['type'] == 'missing' else e['msg']}"
            for e in err.errors()]) from None
    watermark = WatermarkJob(
        enabled=payload.watermark,
        image=_absolute(payload.watermark_path) or default_watermark(),
        width=payload.watermark_width, offset=payload.watermark_offset,
    ) if payload.watermark else WatermarkJob(enabled=False)
    try:
        return JobSpec(
            animation=AnimationRef(namespace="local", name=payload.id),
            reference_image=_absolute(payload.reference_image) or "",
            reference_video=_absolute(payload.reference_video),
            motion_sequence=_absolute(payload.motion_sequence),
            audio=_absolute(payload.audio_file),
            output=_absolute(payload.output_path) or "",
            seed=payload.seed, image_clip_duration=payload.image_clip_duration,
            lower_vram=payload.lower_vram, remove_background=payload.remove_background,
            watermark=watermark, **inference,
        )
    except ValidationError as err:
        names = {"reference_image": "reference_image", "reference_video": "reference_video",
                 "motion_sequence": "motion_sequence", "audio": "audio_file",
                 "output": "output_path"}
        raise PayloadError([
            f"{names.get(str(e['loc'][0]), 'payload') if e['loc'] else 'payload'}: "
            f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors()]) from None
