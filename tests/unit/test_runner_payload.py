"""The original endpoint's payload (musepose_runner.contract.payload): defaults and errors by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musepose_runner.contract.payload import PayloadError, payload_to_job


def test_payload_defaults_and_errors(tmp_path: Path) -> None:
    spec = payload_to_job(json.dumps({"id": "a", "audio_file": "/a.wav", "output_path": "/o.mp4",
                                      "reference_image": "/r.png"}))
    assert spec.seed == 1 and spec.image_clip_duration == 5 and not spec.lower_vram
    assert spec.watermark.enabled and spec.watermark.width == 100 and spec.watermark.offset == 20
    assert spec.watermark.image and spec.watermark.image.endswith("watermark.png")
    with pytest.raises(PayloadError) as raised:
        payload_to_job(json.dumps({"id": "a", "watermark_width": 0}))
    assert {p.split(":")[0] for p in raised.value.problems} == {
        "audio_file", "output_path", "reference_image", "watermark_width"}


