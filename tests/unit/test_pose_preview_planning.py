"""A pose preview (spec.posesOnly) is planned as a CPU pod that neither takes nor waits for
a GPU slot, and spec.extras reaches the runner; its status shows the extra outputs."""

from __future__ import annotations

from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.gateway.responses import request_view
from musepose_operator.gpus.slots import RELEASE, Claim, Offer
from musepose_operator.planning import plan_runner_document
from musepose_operator.planning.parallel import gpus_of
from musepose_operator.reconcile.decide import decide
from musepose_operator.status.mapping import output_info
from musepose_runner.contract.job_spec import JobSpec, RunResult
from tests.unit.test_planning import animation, make_settings, plan, pod_spec
from tests.unit.test_reconcile_decide import JOB_G1, entry, inputs, job, pod, said

GPU_NODES = {"node_selector": {"gpu": "a100"},
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
PREVIEW = {"cpu_request": "3", "memory_request": "5Gi", "memory_limit": "6Gi",
           "node_selector": {"pool": "cpu"},
           "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]}


def _document(planned: dict) -> JobSpec:
    env = planned["spec"]["template"]["spec"]["containers"][0]["env"]
    value = next(e["value"] for e in env if e["name"] == "MUSEPOSE_JOB_SPEC")
    return JobSpec.model_validate_json(value)


def test_a_pose_preview_is_a_cpu_pod_placed_by_the_preview_settings() -> None:
    settings = make_settings(gpu_count=2, pose_preview=PREVIEW, **GPU_NODES)
    planned = plan(animation(posesOnly=True, parallelism=4), settings)
    pod = pod_spec(planned)
    resources = pod["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "3", "memory": "5Gi"},
                         "limits": {"memory": "6Gi"}}  # no nvidia.com/gpu anywhere
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["tolerations"] == PREVIEW["tolerations"]
    # One pod whatever spec.parallelism says: no Indexed Job, no workers to meet.
    assert "completionMode" not in planned["spec"] and "subdomain" not in pod
    document = _document(planned)
    assert document.poses_only and document.parallel is None and document.checkpoint is None


def test_a_full_run_keeps_its_gpu_and_gpu_nodes() -> None:
    settings = make_settings(pose_preview=PREVIEW, **GPU_NODES)
    pod = pod_spec(plan(animation(extras={"grid": True}), settings))
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"gpu": "a100"}


def test_extras_and_poses_only_reach_the_runner() -> None:
    spec = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a/ref.png",
                                         "extras": {"alignedPoses": True, "grid": True}})
    document = plan_runner_document(spec, make_settings(), namespace="a", name="b",
                                    uid="u", generation=1)
    assert not document.poses_only
    assert document.extras.aligned_poses and document.extras.grid
    plain = plan_runner_document(
        AnimationSpec.model_validate({"referenceImage": "s3://inputs/a/ref.png"}),
        make_settings(), namespace="a", name="b", uid="u", generation=1)
    assert not plain.extras.aligned_poses and not plain.extras.grid


def test_a_pose_preview_counts_no_gpus() -> None:
    settings = make_settings(gpu_count=2)
    preview = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a/r.png",
                                            "posesOnly": True, "parallelism": 3})
    assert gpus_of(preview, settings) == 0
    assert gpus_of(preview.model_copy(update={"poses_only": False}), settings) == 6


def test_a_pose_preview_starts_with_every_gpu_taken_and_holds_none() -> None:
    body = animation(posesOnly=True)
    # No offer asked (every GPU taken would make it wait): it starts, claiming nothing.
    decision = decide(inputs(body, gpus=0, offer=None))
    assert decision.gpus == RELEASE
    assert decision.start is not None and decision.start["metadata"]["name"] == JOB_G1
    assert said(decision) == (Phase.PENDING, "JobCreated")
    assert decision.status is not None
    assert decision.status.extras["workers"] == "1 CPU pod (pose preview)"
    # Even a refused offer (a stale one) does not queue it.
    refused = decide(inputs(body, gpus=0, offer=Offer(entry(), granted=False, place=2)))
    assert refused.start is not None and refused.gpus == RELEASE
    running = decide(inputs(body, gpus=0, jobs=(job(),), pods=(pod(running=True),)))
    assert running.gpus == RELEASE and said(running) == (Phase.RUNNING, "Running")


def test_a_full_run_still_waits_for_its_gpus() -> None:
    offer = Offer(entry(), granted=False, place=1)
    decision = decide(inputs(offer=offer))
    assert decision.gpus == Claim(offer) and decision.start is None


def test_the_status_and_the_gateway_show_where_the_extras_are() -> None:
    result = RunResult.model_validate({
        "succeeded": True, "exitCode": 0, "reason": "Completed",
        "output": {"uri": "s3://v/a/d.poses.mp4", "durationSeconds": 3.0, "frames": 12,
                   "fps": 4.0, "width": 768, "height": 768, "sizeBytes": 10, "sha256": "0"},
        "extras": {"alignedPoses": "s3://v/a/d.poses.mp4", "strip": "s3://v/a/d.strip.mp4"}})
    output = output_info(result)
    assert output is not None and "posterUri" not in output
    assert output["extras"] == {"alignedPoses": "s3://v/a/d.poses.mp4",
                                "strip": "s3://v/a/d.strip.mp4"}
    view = request_view({"metadata": {"name": "d", "namespace": "a"},
                         "status": {"phase": "Succeeded", "output": output}},
                        may_see_url=False)
    assert view.output is not None and view.output.extras is not None
    assert view.output.extras.strip == "s3://v/a/d.strip.mp4"
    assert view.output.extras.grid is None
    plain = output_info(result.model_copy(update={"extras": None}))
    assert plain is not None and "extras" not in plain


def test_a_document_without_the_preview_is_what_it_was_before() -> None:
    """An upgraded operator plans the same document for a run that uses neither field, so a
    Job made before the upgrade still counts as the Animation's Job (planning/reuse.py)."""
    spec = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a/ref.png"})
    text = plan_runner_document(spec, make_settings(), namespace="a", name="b", uid="u",
                                generation=1).to_json()
    assert "posesOnly" not in text and "extras" not in text
    used = plan_runner_document(
        spec.model_copy(update={"poses_only": True}), make_settings(), namespace="a",
        name="b", uid="u", generation=1)
    assert JobSpec.model_validate_json(used.to_json()).poses_only
