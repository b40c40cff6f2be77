"""The original REST endpoint's JSON payload → an Animation.

The old single-box endpoint took a flat snake_case payload. ``payload_to_animation`` keeps
its rules (required fields, defaults, bounds) and its output (audioFit loop, the watermark
top-left, a reference video's own audio) and maps it onto the Animation API, so old
clients keep working through ``musepose-operator convert`` and the gateway. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_runner.contract.payload import RENDER_FIELDS, OriginalPayload

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
    # Optional render settings: spec.render, each the payload field of its snake_case name.
    **{f"render.{to_camel(name)}": name for name in (*RENDER_FIELDS, "fit")},
}


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


# Payload fields that name objects: the original endpoint's were object names in one bucket.
LOCATION_FIELDS = ("reference_image", "reference_video", "motion_sequence", "audio_file",
                   "output_path", "watermark_path")


def resolve_object_names(payload: dict[str, Any], object_base: str | None
                         ) -> tuple[dict[str, Any], list[PayloadProblem]]:
    """The payload with each relative object name (``dance/ref.png``: no scheme, no leading
    '/') made a location under ``object_base`` (``s3://bucket/prefix/``); the problems of
    names that cannot be one. Absolute locations pass through unchanged."""
    resolved, problems = dict(payload), []
    for field in LOCATION_FIELDS:
        name = payload.get(field)
        if not isinstance(name, str) or not name or "://" in name or name.startswith("/"):
            continue
        if object_base is None:
            problems.append(PayloadProblem(field, f"{name[:200]!r} is an object name, and "
                            "this namespace has no object base (storage.namespaces.<ns>."
                            "objectBase in the operator's settings); give s3://bucket/key, "
                            "https://host/path or an absolute data-volume path"))
            continue
        segments = name.split("/")
        if any(part in ("", ".", "..") for part in segments) or "\\" in name:
            problems.append(PayloadProblem(field, f"{name[:200]!r}: an object name may not "
                            "have empty, '.' or '..' segments or backslashes"))
            continue
        resolved[field] = object_base.rstrip("/") + "/" + name
    return resolved, problems


def payload_to_animation(
    payload: dict[str, Any], *, namespace: str | None = None, object_base: str | None = None
) -> dict[str, Any]:
    """Map an original payload onto an Animation manifest (a plain dict, ready for YAML).
    ``object_base``: where relative object names live (resolve_object_names).

    Raises InvalidPayload listing every problem found, each naming its payload field.
    """
    payload, problems = resolve_object_names(payload, object_base)
    try:
        seed: OriginalPayload | None = OriginalPayload.model_validate(payload)
    except ValidationError as err:
        seed = None
        reported = {p.field for p in problems}
        problems += [p for p in (_problem(e, lambda loc: loc) for e in err.errors())
                     if p.field not in reported]

    # The spec's own rules (location forms, one motion source) on whatever the payload holds.
    values = seed.model_dump() if seed else {**_DEFAULTS, **payload}
    spec_fields = {spec: values.get(field) for spec, field in SPEC_TO_PAYLOAD_FIELD.items()
                   if "." not in spec}
    spec_fields["watermark"] = {
        part: values.get(SPEC_TO_PAYLOAD_FIELD[f"watermark.{part}"])
        for part in ("enabled", "image", "width", "offset")
    } | {"position": ORIGINAL_WATERMARK_POSITION}
    spec_fields["audioFit"] = ORIGINAL_AUDIO_FIT
    render = _render_fields(values)
    if render:  # a payload without render settings makes the manifest it always made
        spec_fields["render"] = render
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
    if spec.reference_video is not None:
        # The original took the audio from the reference video and used audio_file only with
        # a motion_sequence (it is still required and checked, as there).
        spec = spec.model_copy(update={"audio": None})

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


# The original endpoint's output: the video looped to the audio, the watermark top-left.
ORIGINAL_AUDIO_FIT = "loop"
ORIGINAL_WATERMARK_POSITION = "top-left"
_DEFAULTS = {name: f.default for name, f in OriginalPayload.model_fields.items() if not f.is_required()}
# Only what the payload says goes into the manifest; operator controls keep their defaults.
_PAYLOAD_SPEC_FIELDS = {
    name
    for name, field in AnimationSpec.model_fields.items()
    if field.alias in {key.split(".")[0] for key in SPEC_TO_PAYLOAD_FIELD} | {"audioFit"}
}


def _render_fields(values: dict[str, Any]) -> dict[str, Any]:
    """spec.render from the payload's render settings it has."""
    return {spec.removeprefix("render."): values.get(field)
            for spec, field in SPEC_TO_PAYLOAD_FIELD.items()
            if spec.startswith("render.") and values.get(field) is not None}


def _payload_field(spec_location: str) -> str:
    if spec_location == "render":  # spec.render's only whole-object rule
        return "context_overlap"
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
    ).replace("contextOverlap", "context_overlap").replace("contextFrames", "context_frames")
