"""spec.render: merged over the operator's settings.inference into the JobSpec, bounded by
the operator's renderLimits (per namespace), and the lower-VRAM size it leads to."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from musepose_operator.admission.validation import Rejection, read_spec
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.planning import plan_job, plan_runner_document
from musepose_operator.planning.fallback import fallback_for
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation
from musepose_runner.contract.render_rules import lower_vram_size
from musepose_runner.pipeline.memory_estimate import gpu_fit, peak_bytes

IMAGE = "s3://musepose/team-a/ref.png"


def _spec(**render: Any) -> dict[str, Any]:
    return {"referenceImage": IMAGE, "watermark": {"enabled": False}, "render": render}


def _inference(raw: dict[str, Any], settings: Settings | None = None, *,
               lower_vram: bool = False) -> dict[str, Any]:
    spec = AnimationSpec.model_validate(raw)
    document = plan_runner_document(spec, settings or Settings(), namespace="team-a",
                                    name="a", uid="u", generation=1,
                                    memory_fallback=lower_vram)
    return json.loads(document.to_json())["inference"]


def test_each_setting_the_request_names_replaces_the_operators() -> None:
    inference = _inference(_spec(width=256, height=448, steps=7, guidanceScale=2.5,
                                 frameSkip=0, fps=30, maxFrames=40, contextFrames=16,
                                 contextOverlap=2))
    expected = {"width": 256, "height": 448, "steps": 7, "guidanceScale": 2.5,
                "frameSkip": 0, "fps": 30.0, "maxFrames": 40, "contextFrames": 16,
                "contextOverlap": 2, "fit": "letterbox", "outputWidth": 256,
                "outputHeight": 448}
    assert {key: inference.get(key) for key in expected} == expected


def test_what_the_request_leaves_out_is_the_operators() -> None:
    settings = Settings(inference={"width": 512, "height": 640, "steps": 12, "maxFrames": 90})
    inference = _inference(_spec(steps=5), settings)
    assert (inference["width"], inference["height"], inference["steps"],
            inference["maxFrames"], inference["guidanceScale"]) == (512, 640, 5, 90, 3.5)
    # No size asked: MusePose's stretch to the model size, the video at the source's size.
    assert inference["fit"] == "stretch" and "outputWidth" not in inference
    plain = _inference({"referenceImage": IMAGE, "watermark": {"enabled": False}}, settings)
    assert (plain["width"], plain["height"], plain["steps"]) == (512, 640, 12)


def test_one_side_given_takes_the_other_from_the_operator() -> None:
    inference = _inference(_spec(height=448, fit="stretch"))
    assert (inference["width"], inference["height"]) == (768, 448)
    assert (inference["outputWidth"], inference["outputHeight"], inference["fit"]) == (
        768, 448, "stretch")


def test_lower_vram_keeps_512_for_the_operators_size_and_the_requests_aspect() -> None:
    plain = _inference({"referenceImage": IMAGE, "watermark": {"enabled": False}},
                       lower_vram=True)
    assert (plain["width"], plain["height"]) == (512, 512)
    tall = _inference(_spec(width=1080, height=1920), lower_vram=True)
    # 512/1920 of each side, down to a multiple of 8; still delivered at the asked size.
    assert (tall["width"], tall["height"]) == (288, 512)
    assert (tall["outputWidth"], tall["outputHeight"]) == (1080, 1920)
    small = _inference(_spec(width=256, height=448), lower_vram=True)
    assert (small["width"], small["height"]) == (256, 448)


def test_the_fallback_says_the_requests_own_size() -> None:
    spec = AnimationSpec.model_validate(_spec(width=1080, height=1920))
    seen = Observation(Phase.FAILED, "OutOfMemory", "out of memory", attempts=1)
    decided = fallback_for(spec, Settings(), {"observedGeneration": 1}, 1, seen)
    assert decided is not None and decided.extras == {"memoryFallback": "1080x1920 -> 288x512"}


def test_the_memory_estimate_judges_the_fallback_at_the_size_it_renders() -> None:
    assert lower_vram_size(1080, 1920) == (288, 512)
    fit = gpu_fit(10 * 1024**3, 1080, 1920, 48, dtype_bytes=2, lower_vram=False)
    assert fit.fallback_need == peak_bytes(288, 512, 48, offloaded=True)


def _rejection(raw: dict[str, Any], settings: Settings, namespace: str = "team-a"
               ) -> Rejection:
    read = read_spec(raw, settings, namespace)
    assert isinstance(read, Rejection), read
    return read


LIMITS = {"maxPixels": 256 * 448, "maxSteps": 30, "maxFrames": 100,
          "namespaces": {"team-b": {"maxPixels": 128 * 128}}}


def test_a_size_over_the_pixel_limit_is_refused_naming_field_and_limit() -> None:
    settings = Settings(render_limits=LIMITS)
    assert not isinstance(read_spec(_spec(width=256, height=448), settings, "team-a"),
                          Rejection)
    refused = _rejection(_spec(width=264, height=448), settings)
    assert refused.reason == "RenderLimitExceeded"
    assert refused.message == ("spec.render.width: 264x448 is 118272 pixels, over namespace "
                               "team-a's limit of 114688 pixels (renderLimits.maxPixels)")


def test_a_namespaces_own_limit_replaces_the_operators_there() -> None:
    settings = Settings(render_limits=LIMITS)
    refused = _rejection(_spec(width=256, height=448), settings, "team-b")
    assert "over namespace team-b's limit of 16384 pixels" in refused.message
    # Its steps bound is the operator-wide one.
    assert "limit of 30 (renderLimits.maxSteps)" in _rejection(_spec(steps=31), settings,
                                                               "team-b").message


def test_steps_and_frames_over_their_limits_are_refused() -> None:
    settings = Settings(render_limits=LIMITS)
    assert _rejection(_spec(steps=31), settings).message == (
        "spec.render.steps: 31 is over namespace team-a's limit of 30 (renderLimits.maxSteps)")
    assert _rejection(_spec(maxFrames=101), settings).message.startswith(
        "spec.render.maxFrames: 101 is over")


def test_the_operators_frame_default_is_lowered_to_the_limit() -> None:
    settings = Settings(render_limits={"maxFrames": 100})
    assert _inference({"referenceImage": IMAGE, "watermark": {"enabled": False}},
                      settings)["maxFrames"] == 100


def test_no_limits_bound_nothing() -> None:
    assert not isinstance(read_spec(_spec(width=2048, height=2048, steps=200), Settings(),
                                    "team-a"), Rejection)


def test_an_overlap_not_below_the_operators_context_is_refused() -> None:
    refused = _rejection(_spec(contextOverlap=48), Settings())
    assert refused.reason == "InvalidSpec"
    assert "contextOverlap must be smaller than contextFrames" in refused.message
    with pytest.raises(ValidationError, match="contextOverlap must be smaller"):
        AnimationSpec.model_validate(_spec(contextFrames=8, contextOverlap=8))


@pytest.mark.parametrize("render", [{"width": 100}, {"height": 4096}, {"steps": 0},
                                    {"fps": 0}, {"frameSkip": 17}, {"fit": "crop"},
                                    {"guidanceScale": 0.5}, {"colour": "red"}])
def test_out_of_bounds_settings_are_refused_by_the_model(render: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AnimationSpec.model_validate(_spec(**render))


def test_a_render_edit_replaces_the_run() -> None:
    body = {"metadata": {"name": "a", "namespace": "team-a", "uid": "u", "generation": 1}}
    one = plan_job(body, AnimationSpec.model_validate(_spec(steps=5)), Settings())
    two = plan_job(body, AnimationSpec.model_validate(_spec(steps=6)), Settings())
    env = [{e["name"]: e.get("value") for e in j["spec"]["template"]["spec"]["containers"][0]
            ["env"]}["MUSEPOSE_JOB_SPEC"] for j in (one, two)]
    assert json.loads(env[0])["inference"]["steps"] == 5
    assert json.loads(env[1])["inference"]["steps"] == 6
