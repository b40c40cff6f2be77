"""The lower-VRAM retry decision and the planning it leads to."""

from __future__ import annotations

import json

import pytest

from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.planning import job_name, plan_job
from musepose_operator.planning.fallback import fallback_for, in_fallback
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation

IMAGE = "s3://musepose/ns/ref.png"
OOM = Observation(Phase.FAILED, "OutOfMemory", "the GPU ran out of memory", attempts=1)


@pytest.fixture
def settings() -> Settings:
    return Settings()  # MusePose's 768 px defaults, the default bucket "musepose"


def _spec(**fields: object) -> AnimationSpec:
    return AnimationSpec.model_validate({"referenceImage": IMAGE,
                                         "watermark": {"enabled": False}, **fields})


@pytest.mark.parametrize("reason", ["OutOfMemory", "OOMKilled"])
def test_out_of_memory_starts_the_fallback_once(settings: Settings, reason: str) -> None:
    seen = Observation(Phase.FAILED, reason, "out of memory", attempts=2)
    decided = fallback_for(_spec(), settings, {"observedGeneration": 1}, 1, seen)
    assert decided is not None
    assert decided.phase is Phase.RUNNING and decided.reason == "MemoryFallback"
    assert decided.extras == {"memoryFallback": "768x768 -> 512x512"}
    assert decided.attempts == 2
    # Once this generation runs its retry, a second out-of-memory failure stands.
    status = {"observedGeneration": 1, "memoryFallback": "768x768 -> 512x512"}
    assert in_fallback(status, 1) and not in_fallback(status, 2)
    assert fallback_for(_spec(), settings, status, 1, seen) is None


@pytest.mark.parametrize("spec, seen", [
    (_spec(memoryFallback="Never"), OOM),
    (_spec(lowerVram=True), OOM),
    (_spec(), Observation(Phase.FAILED, "InputNotFound", "no such object")),
    (_spec(), Observation(Phase.RUNNING, "Running", "attempt 1: generating")),
])
def test_no_fallback(settings: Settings, spec: AnimationSpec, seen: Observation) -> None:
    assert fallback_for(spec, settings, {"observedGeneration": 1}, 1, seen) is None


def test_fallback_job_renders_at_512_under_its_own_name(settings: Settings) -> None:
    body = {"metadata": {"name": "a", "namespace": "ns", "uid": "u-1", "generation": 3}}
    job = plan_job(body, _spec(), settings, memory_fallback=True)
    assert job["metadata"]["name"] == "a-g3-" + job_name("a", "u-1", 3)[-6:] + "-lv"
    env = {e["name"]: e.get("value") for e in
           job["spec"]["template"]["spec"]["containers"][0]["env"]}
    document = json.loads(env["MUSEPOSE_JOB_SPEC"])
    assert document["lowerVram"] is True
    assert (document["inference"]["width"], document["inference"]["height"]) == (512, 512)
    assert document["checkpoint"]["location"] == \
        "s3://musepose/ns/.musepose-checkpoints/u-1.safetensors"
