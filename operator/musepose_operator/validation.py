"""Checks admission cannot make: they depend on the operator's settings. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from musepose_operator.api import AnimationSpec
from musepose_operator.settings import Settings


@dataclass(frozen=True)
class Rejection:
    reason: str  # one CamelCase word for the Accepted condition
    message: str  # what to fix


def check_spec(spec: AnimationSpec, settings: Settings) -> Rejection | None:
    if spec.watermark.enabled and not (spec.watermark.image or settings.default_watermark):
        return Rejection(
            "WatermarkImageRequired",
            "watermark.enabled is true but watermark.image is empty and the operator has no "
            "default watermark: set watermark.image or watermark.enabled: false",
        )
    allowed = {host.lower() for host in settings.allowed_https_hosts}
    inputs = (("referenceImage", spec.reference_image),
              ("referenceVideo", spec.reference_video),
              ("motionSequence", spec.motion_sequence),
              ("audio", spec.audio),
              ("watermark.image", spec.watermark.image))
    for field, value in inputs:
        if value and value.startswith("https://"):
            host = (urlsplit(value).hostname or "").lower()
            if host not in allowed:
                listed = ", ".join(sorted(allowed)) or "none"
                return Rejection(
                    "HostNotAllowed",
                    f"{field} {value}: host {host} is not on the operator's https allow-list "
                    f"(allowed: {listed})",
                )
    plain_paths = [(field, value) for field, value in (*inputs, ("output", spec.output))
                   if value and value.startswith("/")]
    if plain_paths and not settings.data_pvc:
        field, path = plain_paths[0]
        return Rejection(
            "DataVolumeNotConfigured",
            f"{field} {path} is a path on the shared data volume, but the operator has no "
            "data volume configured (chart value runner.data.pvc): use s3:// locations",
        )
    return None
