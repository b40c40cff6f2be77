"""The pose preview and the extra outputs on the real control plane: the operator plans the
runs, the test kubelet runs the real runner (tiny demo weights), MinIO holds the outputs.

Shows (issue 32 item 3): a posesOnly Animation ends Succeeded in a pod with no GPU request,
started while the only GPU slot was held, and its aligned-pose video and strip are where
status says; a full run with extras.grid has the grid where status says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.demo_inputs import DemoInputs
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.integration.test_operator import _upload
from tests.operator_env import (
    REAL_RUNNER,
    animation,
    condition,
    create_animation,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TEST_KUBELET = {"musepose.io/test-kubelet": "true"}


def _stat(minio: Any, uri: str) -> Any:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return minio.client().stat_object(bucket, key)


def _pod_of(kube_api: client.ApiClient, ns: str, name: str) -> Any:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        ns, label_selector=f"musepose.io/animation={name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def test_pose_preview_runs_on_cpu_beside_a_full_run_and_both_extras_land(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    dance = _upload(minio, f"{ns}/dance.mp4", media.dance_video)
    # One GPU slot in all: the full run holds it while the preview runs.
    settings = operator_settings(minio.endpoint, runner=REAL_RUNNER, MAX_CONCURRENT=1,
                                 NODE_SELECTOR=TEST_KUBELET,
                                 POSE_PREVIEW={"node_selector": TEST_KUBELET,
                                               "cpu_request": "1", "memory_request": "1Gi"})
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation("full", referenceImage=image,
                                                 referenceVideo=dance, extras={"grid": True}))
        eventually("the full run's Job", lambda: jobs_of(kube_api, ns, "full"), timeout=60)
        create_animation(kube_api, ns, animation("preview", referenceImage=image,
                                                 referenceVideo=dance, posesOnly=True))
        eventually("the preview's Job", lambda: jobs_of(kube_api, ns, "preview"), timeout=30)
        holding = get_animation(kube_api, ns, "full")
        finished = condition(holding, "Finished")
        assert not finished or finished["status"] != "True", "the full run ended too soon"
        preview = wait_finished(kube_api, ns, "preview", timeout=240)
        full = wait_finished(kube_api, ns, "full", timeout=240)
        log = operator.output()
    status = preview["status"]
    assert status["phase"] == "Succeeded", (status, log[-3000:])
    assert status["workers"] == "1 CPU pod (pose preview)"
    output = status["output"]
    extras = output["extras"]
    assert extras == {"alignedPoses": f"s3://videos/{ns}/preview.poses.mp4",
                      "strip": f"s3://videos/{ns}/preview.strip.mp4"}
    assert output["uri"] == extras["alignedPoses"] and output["frames"] == 12
    assert _stat(minio, extras["alignedPoses"]).size == output["sizeBytes"]
    strip = _stat(minio, extras["strip"])
    assert strip.size > 0 and strip.content_type == "video/mp4"
    with pytest.raises(Exception, match="NoSuchKey|Not Found|does not exist"):
        _stat(minio, f"s3://videos/{ns}/preview.mp4")  # no video made: nothing diffused
    pod = _pod_of(kube_api, ns, "preview")
    resources = pod.spec.containers[0].resources
    for quantities in (resources.requests or {}, resources.limits or {}):
        assert not any("gpu" in name for name in quantities), quantities
    assert resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert pod.spec.node_selector == TEST_KUBELET  # settings.posePreview, not the GPU nodes
    assert not any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations or [])
    # The full run: its video, and the grid where status says.
    assert full["status"]["phase"] == "Succeeded", full["status"]
    full_output = full["status"]["output"]
    assert full_output["uri"] == f"s3://videos/{ns}/full.mp4"
    assert full_output["extras"] == {"grid": f"s3://videos/{ns}/full.grid.mp4"}
    assert _stat(minio, full_output["extras"]["grid"]).size > 0
    full_pod = _pod_of(kube_api, ns, "full")
    assert full_pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
