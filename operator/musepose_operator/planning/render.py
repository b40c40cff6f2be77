"""One Animation's render settings: its spec.render merged over the operator's
settings.inference, and what the operator's limits say of it. Pure.

Everything after planning (the runner's GPU-memory estimate, its out-of-memory check,
resume fingerprints, several workers, progress and ETA) reads the JobSpec's inference
settings, so the request's own settings reach all of them through ``render_settings``.
"""

from __future__ import annotations

from musepose_operator.api import AnimationSpec
from musepose_operator.settings import RenderLimitValues, Settings
from musepose_runner.contract.job_spec import InferenceSettings
from musepose_runner.contract.render_rules import lowered as lowered
from musepose_runner.contract.render_rules import merged_inference

LIMIT_REASON = "RenderLimitExceeded"


def render_settings(spec: AnimationSpec, settings: Settings, namespace: str, *,
                    lower_vram: bool = False) -> InferenceSettings:
    """The JobSpec's inference settings. Raises pydantic's ValidationError when the merge
    is not a valid whole (e.g. a contextOverlap not below the operator's contextFrames)."""
    render = spec.render
    return merged_inference(
        settings.inference, render.requested() if render else {},
        render.fit if render else "letterbox",
        max_frames_bound=settings.render_limits.for_namespace(namespace).max_frames,
        lower_vram=lower_vram)


def planned_size(spec: AnimationSpec, settings: Settings) -> tuple[int, int]:
    """The render size the request asks for (before any lowerVram)."""
    render = spec.render
    return ((render.width if render and render.width else settings.inference.width),
            (render.height if render and render.height else settings.inference.height))


def limit_problems(spec: AnimationSpec, settings: Settings, namespace: str | None
                   ) -> list[str]:
    """One message per spec.render setting over the operator's limit for ``namespace``
    (None: the operator-wide limits), each naming the field and the limit. The operator's
    own defaults are not checked: they are the operator's choice."""
    render = spec.render
    if render is None:
        return []
    limits = (settings.render_limits.for_namespace(namespace) if namespace
              else RenderLimitValues.model_validate(
                  settings.render_limits.model_dump(exclude={"namespaces"})))
    where = f"namespace {namespace}'s" if namespace else "the operator's"
    problems = []
    if render.sized and limits.max_pixels:
        width, height = planned_size(spec, settings)
        if width * height > limits.max_pixels:
            field = "spec.render.width" if render.width is not None else "spec.render.height"
            problems.append(f"{field}: {width}x{height} is {width * height} pixels, over "
                            f"{where} limit of {limits.max_pixels} pixels "
                            "(renderLimits.maxPixels)")
    for field, value, limit, key in (
            ("steps", render.steps, limits.max_steps, "maxSteps"),
            ("maxFrames", render.max_frames, limits.max_frames, "maxFrames")):
        if value is not None and limit and value > limit:
            problems.append(f"spec.render.{field}: {value} is over {where} limit of {limit} "
                            f"(renderLimits.{key})")
    return problems
