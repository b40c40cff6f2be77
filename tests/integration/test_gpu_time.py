"""GPU time is never thrown away: the lower-VRAM retry after running out of GPU memory, and
a runner killed mid-denoising (as a node loss kills it) resuming from its checkpoint."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_runner.contract import job_spec as contract
from tests.e2e.demo_inputs import DemoInputs
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.integration.test_operator import _upload
from tests.operator_env import (
    FAKE_RUNNER,
    REAL_RUNNER,
    OperatorProcess,
    animation,
    create_animation,
    events_of,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = pytest.mark.cluster


def _document(job: Any) -> dict[str, Any]:
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env or []}
    return json.loads(env[contract.ENV_JOB_SPEC])


# The operator renders at 768 px (MusePose's default); the fake runner runs out of memory
# there (seed 71) and succeeds in lower-VRAM mode.
AT_768 = pytest.mark.parametrize(
    "fake_operator", [{"INFERENCE": {"width": 768, "height": 768}}], indirect=True)


@AT_768
def test_out_of_memory_is_retried_once_in_lower_vram_mode(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("oom", referenceImage="s3://inputs/a.png",
                                             seed=71))
    obj = wait_finished(kube_api, ns, "oom", timeout=120)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert status["memoryFallback"] == "768x768 -> 512x512"
    jobs = jobs_of(kube_api, ns, "oom")
    assert [j.metadata.name.endswith("-lv") for j in jobs] == [True]
    document = _document(jobs[0])
    assert document["lowerVram"] is True
    assert (document["inference"]["width"], document["inference"]["height"]) == (512, 512)
    reasons = [e.reason for e in events_of(kube_api, ns, "oom")]
    assert reasons.count("MemoryFallback") == 1 and "Succeeded" in reasons
    fallback = next(e for e in events_of(kube_api, ns, "oom") if e.reason == "MemoryFallback")
    assert "768x768 -> 512x512" in fallback.message


@AT_768
def test_out_of_memory_fails_at_once_when_fallback_is_never(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("oom-never", referenceImage="s3://inputs/a.png",
                                             seed=71, memoryFallback="Never"))
    obj = wait_finished(kube_api, ns, "oom-never", timeout=120)
    status = obj["status"]
    assert status["phase"] == "Failed" and status["reason"] == "OutOfMemory", status
    assert "ran out of memory" in status["message"]
    assert not status.get("memoryFallback")
    jobs = jobs_of(kube_api, ns, "oom-never")
    assert len(jobs) == 1 and not jobs[0].metadata.name.endswith("-lv")

    def job_failed() -> Any:  # by podFailurePolicy, without a retry
        job = jobs_of(kube_api, ns, "oom-never")[0]
        failed = [c for c in job.status.conditions or [] if c.type == "Failed"]
        return failed[0] if failed else None

    assert eventually("the Job failed", job_failed).reason == "PodFailurePolicy"
    assert jobs_of(kube_api, ns, "oom-never")[0].status.failed == 1


def checkpoint_step(minio: Any, key: str) -> int:
    """The denoising step of the checkpoint at s3://videos/``key`` (0: none yet)."""
    try:
        data = minio.client().get_object("videos", key).read()
    except Exception:  # noqa: BLE001 - not there yet
        return 0
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return int(header["__metadata__"]["step"])


def _runner_processes(pod: str) -> list[int]:
    """PIDs of local processes the test kubelet started for ``pod`` (their environment
    names it, as the downward API does in a cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{contract.ENV_POD_NAME}={pod}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # the real runner on CPU, twice
def test_killed_runner_resumes_from_its_checkpoint(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    steps = 8
    settings = operator_settings(
        minio.endpoint, runner=REAL_RUNNER, S3_ACCESS_KEY=minio.access_key,
        S3_SECRET_KEY=minio.secret_key,
        INFERENCE={"width": 64, "height": 64, "steps": steps, "contextFrames": 8,
                   "contextOverlap": 2},
        CHECKPOINTS={"enabled": True, "every_steps": 1, "min_interval_seconds": 0})
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation("resume", referenceImage=image,
                                                 imageClipDuration=1, seed=4))
        uid = eventually("the Animation's uid",
                         lambda: get_animation(kube_api, ns, "resume")["metadata"]["uid"])
        checkpoint = f"{ns}/.musepose-checkpoints/{uid}.safetensors"

        def saved_step() -> int:
            return checkpoint_step(minio, checkpoint)

        eventually("a checkpoint after 2 steps", lambda: saved_step() >= 2, timeout=180)
        pod = client.CoreV1Api(kube_api).list_namespaced_pod(
            ns, label_selector="app.kubernetes.io/component=runner").items[0].metadata.name
        for pid in _runner_processes(pod):
            os.kill(pid, signal.SIGKILL)  # as a node loss would end it
        killed_at = saved_step()
        obj = wait_finished(kube_api, ns, "resume", timeout=300)
        status = obj["status"]
        assert status["phase"] == "Succeeded", (status, operator.output()[-3000:])
        # The same Animation run without interruption makes the same video, byte for byte
        # (the encoder is deterministic, so equal bytes mean equal frames).
        create_animation(kube_api, ns, animation("whole", referenceImage=image,
                                                 imageClipDuration=1, seed=4))
        whole = wait_finished(kube_api, ns, "whole", timeout=300)["status"]
    assert whole["phase"] == "Succeeded" and not whole.get("resumedFromStep"), whole
    assert status["output"]["sha256"] == whole["output"]["sha256"]
    print(f"resumed from step {status['resumedFromStep']} of {steps}, "
          f"saving {status['resumeSecondsSaved']} s of denoising")
    assert status["attempts"] == 2
    assert status["resumedFromStep"] >= killed_at >= 2
    assert status["resumeSecondsSaved"] > 0
    assert "resumed from denoising step" in status["message"]
    with pytest.raises(Exception, match="NoSuchKey|does not exist"):
        minio.client().stat_object("videos", checkpoint)  # removed after success


def test_deleting_an_animation_removes_its_checkpoint(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    ns = ready_namespace
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                                 S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path):
        _delete_while_running(kube_api, ns, minio)


def _delete_while_running(kube_api: client.ApiClient, ns: str, minio: Any) -> None:
    create_animation(kube_api, ns, animation(
        "gone", referenceImage="s3://inputs/a.png", seed=960, outputReclaimPolicy="Delete"))
    uid = eventually("the Animation's uid",
                     lambda: get_animation(kube_api, ns, "gone")["metadata"]["uid"])
    # What a disrupted run leaves beside its output.
    checkpoint = f"{ns}/.musepose-checkpoints/{uid}.safetensors"
    minio.client().put_object("videos", checkpoint, io.BytesIO(b"state"), 5)
    eventually("the Job", lambda: jobs_of(kube_api, ns, "gone"))
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "gone")

    def removed() -> bool:
        try:
            minio.client().stat_object("videos", checkpoint)
        except Exception:  # noqa: BLE001 - NoSuchKey
            return True
        return False

    eventually("the checkpoint removed", removed, timeout=60)
