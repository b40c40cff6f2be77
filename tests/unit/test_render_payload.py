"""The original payload's optional render settings: the same as spec.render, snake_case,
through the operator's converter (and so the gateway) and the runner's local runs; a
payload without them stays exactly what it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from musepose_operator.admission.payload import InvalidPayload, payload_to_animation
from musepose_runner.contract.payload import PayloadError, payload_to_job

OBJECTS = {"id": "clip-1", "audio_file": "s3://bkt/a.wav", "output_path": "s3://bkt/o.mp4",
           "reference_image": "s3://bkt/r.png"}
FILES = {"id": "clip-1", "audio_file": "/a.wav", "output_path": "/o.mp4",
         "reference_image": "/r.png"}
RENDER = {"width": 256, "height": 448, "steps": 6, "guidance_scale": 2.5, "frame_skip": 0,
          "fps": 24, "max_frames": 50, "context_frames": 16, "context_overlap": 2}


def test_a_payload_without_render_settings_makes_the_manifest_it_always_made() -> None:
    spec = payload_to_animation(OBJECTS)["spec"]
    assert "render" not in spec
    inference = payload_to_job(json.dumps(FILES)).inference
    assert (inference.width, inference.height, inference.steps, inference.fps,
            inference.output_width) == (768, 768, 20, None, None)


def test_render_settings_become_spec_render() -> None:
    spec = payload_to_animation({**OBJECTS, **RENDER, "fit": "stretch"})["spec"]
    assert spec["render"] == {"width": 256, "height": 448, "steps": 6, "guidanceScale": 2.5,
                              "frameSkip": 0, "fps": 24.0, "maxFrames": 50,
                              "contextFrames": 16, "contextOverlap": 2, "fit": "stretch"}


def test_render_settings_reach_a_local_runs_job_spec() -> None:
    inference = payload_to_job(json.dumps({**FILES, **RENDER})).inference
    assert (inference.width, inference.height, inference.steps, inference.guidance_scale,
            inference.frame_skip, inference.fps, inference.max_frames,
            inference.context_frames, inference.context_overlap, inference.fit,
            inference.output_width, inference.output_height) == (
        256, 448, 6, 2.5, 0, 24.0, 50, 16, 2, "letterbox", 256, 448)


@pytest.mark.parametrize("bad, named", [
    ({"width": 100}, "width: Input should be a multiple of 8"),
    ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
    ({"fit": "crop"}, "fit: Input should be 'letterbox' or 'stretch'"),
    ({"context_frames": 8, "context_overlap": 8},
     "context_overlap: context_overlap must be smaller than context_frames"),
])
def test_bad_render_settings_are_named_as_payload_fields(bad: dict[str, Any],
                                                        named: str) -> None:
    with pytest.raises(InvalidPayload) as converted:
        payload_to_animation({**OBJECTS, **bad})
    assert named in str(converted.value)
    with pytest.raises(PayloadError) as local:
        payload_to_job(json.dumps({**FILES, **bad}))
    assert local.value.problems == [named]
