"""The original REST endpoint's JSON payload → an Animation.

The old single-box endpoint took a flat snake_case payload. ``payload_to_animation`` keeps
its rules (required fields, defaults, bounds) and maps it onto the Animation API, so old
clients keep working through ``musepose-operator convert`` and the gateway. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION

MAX_NAME_LENGTH = 63  # a DNS-1123 label keeps Job and Pod names derived from it valid

# Animation spec field (dotted, camelCase) → the payload field it came from.
SPEC_TO_PAYLOAD_FIELD = {
    "referenceImage": "reference_image",
    "referenceVideo": "reference_video",
    "motionSequence": "motion_sequence",
    "audio": "audio_file",
    "output": "output_path",
    "seed": "seed",
    "imageClipDuration": "image_clip_duration",
    "lowerVram": "lower_vram",
    "watermark.enabled": "watermark",
    "watermark.image": "watermark_path",
    "watermark.width": "watermark_width",
    "watermark.offset": "watermark_offset",
    "removeBackground": "remove_background",
}


class SeedPayload(BaseModel):
    """The original endpoint's payload, with its own required fields and defaults."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    audio_file: str = Field(min_length=1)
    output_path: str = Field(min_length=1)
    reference_image: str = Field(min_length=1)
    reference_video: str | None = None
    motion_sequence: str | None = None
    seed: int = 1
    image_clip_duration: float = 5.0
    lower_vram: StrictBool = False
    watermark: StrictBool = True
    watermark_path: str | None = None
    watermark_width: int = Field(100, gt=0)
    watermark_offset: int = Field(20, gt=0)
    remove_background: StrictBool = False


@dataclass(frozen=True)
class PayloadProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidPayload(ValueError):
    def __init__(self, problems: list[PayloadProblem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def name_from_id(original_id: str) -> str:
    """A valid DNS-1123 label for ``original_id``; a hash suffix keeps altered ids distinct."""
    base = re.sub(r"[^a-z0-9-]+", "-", original_id.lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if base and base == original_id and len(base) <= MAX_NAME_LENGTH:
        return base
    digest = hashlib.sha256(original_id.encode()).hexdigest()[:8]
    stem = (base or "animation")[: MAX_NAME_LENGTH - len(digest) - 1].rstrip("-")
    return f"{stem}-{digest}"


def parse_payload_text(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidPayload(
            [PayloadProblem("payload", f"not valid JSON: {err.msg} at line {err.lineno}")]
        ) from None
    if not isinstance(data, dict):
        raise InvalidPayload([PayloadProblem("payload", "must be a JSON object")])
    return data


def payload_to_animation(
    payload: dict[str, Any], *, namespace: str | None = None
) -> dict[str, Any]:
    """Map an original payload onto an Animation manifest (a plain dict, ready for YAML).

    Raises InvalidPayload listing every problem found, each naming its payload field.
    """
    problems: list[PayloadProblem] = []
    try:
        seed: SeedPayload | None = SeedPayload.model_validate(payload)
    except ValidationError as err:
        seed = None
        problems += [_problem(e, lambda loc: loc) for e in err.errors()]

    # The spec's own rules (location forms, one motion source) on whatever the payload holds.
    values = seed.model_dump() if seed else {**_DEFAULTS, **payload}
    spec_fields = {spec: values.get(field) for spec, field in SPEC_TO_PAYLOAD_FIELD.items()
                   if "." not in spec}
    spec_fields["watermark"] = {
        part: values.get(SPEC_TO_PAYLOAD_FIELD[f"watermark.{part}"])
        for part in ("enabled", "image", "width", "offset")
    }
    spec: AnimationSpec | None = None
    try:
        spec = AnimationSpec.model_validate(spec_fields)
    except ValidationError as err:
        reported = {p.field for p in problems}
        problems += [
            p for p in (_problem(e, _payload_field) for e in err.errors())
            if p.field not in reported
        ]
    if problems or seed is None or spec is None:
        raise InvalidPayload(problems)

    metadata: dict[str, Any] = {
        "name": name_from_id(seed.id),
        "annotations": {ORIGINAL_ID_ANNOTATION: seed.id},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec.model_dump(
            by_alias=True, exclude_none=True, mode="json", include=_PAYLOAD_SPEC_FIELDS
        ),
    }


_DEFAULTS = {name: f.default for name, f in SeedPayload.model_fields.items() if not f.is_required()}
# Only what the payload says goes into the manifest; operator controls keep their defaults.
_PAYLOAD_SPEC_FIELDS = {
    name
    for name, field in AnimationSpec.model_fields.items()
    if field.alias in {key.split(".")[0] for key in SPEC_TO_PAYLOAD_FIELD}
}


def _payload_field(spec_location: str) -> str:
    return SPEC_TO_PAYLOAD_FIELD.get(spec_location, spec_location)


def _problem(error: Any, field_of: Any) -> PayloadProblem:
    location = ".".join(str(part) for part in error["loc"])
    # The spec's only whole-object rule is the one-motion-source rule.
    field = field_of(location) if location else "reference_video, motion_sequence"
    if error["type"] == "missing":
        return PayloadProblem(field, "is required")
    message = error["msg"].removeprefix("Value error, ")
    return PayloadProblem(field, _payload_wording(message))


def _payload_wording(message: str) -> str:
    """Name payload fields, not spec fields, in cross-field messages."""
    return message.replace("referenceVideo", "reference_video").replace(
        "motionSequence", "motion_sequence"
    )
