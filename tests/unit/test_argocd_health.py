"""manifests/argocd/health.lua, run for real in Lua 5.1 (what Argo CD embeds, gopher-lua)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import lua51  # the dev extra; Lua 5.1 like Argo CD's gopher-lua

from musepose_operator.api import Phase
from musepose_operator.base.types import Obj
from musepose_operator.status.conditions import desired_conditions, merge_conditions

SCRIPT = (Path(__file__).resolve().parents[2] / "manifests" / "argocd" / "health.lua").read_text()


def health(animation: Obj) -> tuple[str, str]:
    """Run the script as Argo CD does: ``obj`` is a global, the script returns a table."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    run = lua.eval("""
        function(obj, source)
          local chunk = assert(loadstring(source, "health.lua"))
          setfenv(chunk, setmetatable({obj = obj}, {__index = _G}))
          return chunk()
        end""")
    result = run(lua.table_from(animation, recursive=True), SCRIPT)
    return str(result["status"]), str(result["message"])


def animation(status: Obj | None, generation: int = 1) -> Obj:
    body: Obj = {"apiVersion": "musepose.io/v1alpha1", "kind": "Animation",
                 "metadata": {"name": "first-dance", "namespace": "default",
                              "generation": generation},
                 "spec": {"referenceImage": "s3://b/ref.png"}}
    if status is not None:
        body["status"] = status
    return body


def status_for(phase: Phase, reason: str, message: str, **extra: Any) -> Obj:
    """The status the operator writes for a phase (conditions from its own code)."""
    conditions = merge_conditions([], desired_conditions(
        phase, reason, message, accepted=True, accepted_reason="Valid",
        accepted_message="the spec is valid"), generation=1, now="2026-01-01T00:00:00Z")
    return {"observedGeneration": 1, "phase": phase.value, "reason": reason,
            "message": message, "conditions": conditions, **extra}


def test_new_animation_without_status_is_progressing() -> None:
    state, message = health(animation(None))
    assert state == "Progressing"
    assert "operator" in message


@pytest.mark.parametrize(("phase", "reason"), [
    (Phase.PENDING, "JobCreated"), (Phase.QUEUED, "WaitingForCapacity"),
    (Phase.RUNNING, "Rendering"),
])
def test_work_in_progress_is_progressing_with_the_operators_message(phase: Phase,
                                                                     reason: str) -> None:
    status = status_for(phase, reason, "making the video",
                        progress={"summary": "45% (27/60 frames)"})
    state, message = health(animation(status))
    assert state == "Progressing"
    assert message == f"{reason}: making the video (45% (27/60 frames))"


def test_succeeded_is_healthy_and_says_where_the_video_is() -> None:
    status = status_for(Phase.SUCCEEDED, "Succeeded", "video written",
                        output={"uri": "s3://musepose/default/first-dance.mp4"})
    assert health(animation(status)) == (
        "Healthy", "Video written to s3://musepose/default/first-dance.mp4")


def test_failed_is_degraded_with_the_reason_and_what_to_fix() -> None:
    status = status_for(Phase.FAILED, "BadInput",
                        "referenceImage: s3://b/ref.png is not an image; upload a PNG or JPEG")
    assert health(animation(status)) == (
        "Degraded", "BadInput: referenceImage: s3://b/ref.png is not an image; upload a PNG "
                    "or JPEG")


def test_suspended_is_suspended() -> None:
    status = status_for(Phase.SUSPENDED, "Suspended", "set spec.suspend to false to run")
    state, message = health(animation(status))
    assert state == "Suspended"
    assert "spec.suspend" in message


def test_status_of_an_older_generation_is_progressing_even_when_it_looks_final() -> None:
    status = status_for(Phase.SUCCEEDED, "Succeeded", "video written",
                        output={"uri": "s3://musepose/default/first-dance.mp4"})
    state, message = health(animation(status, generation=2))
    assert state == "Progressing"
    assert "generation 2" in message
    state, _ = health(animation({**status_for(Phase.FAILED, "BadInput", "x"),
                                 "observedGeneration": None}, generation=2))
    assert state == "Progressing"


def test_without_a_phase_the_conditions_decide() -> None:
    failed = status_for(Phase.FAILED, "DeadlineExceeded", "ran longer than 4h")
    del failed["phase"]
    assert health(animation(failed)) == ("Degraded", "DeadlineExceeded: ran longer than 4h")
    succeeded = status_for(Phase.SUCCEEDED, "Succeeded", "done")
    del succeeded["phase"]
    assert health(animation(succeeded))[0] == "Healthy"
