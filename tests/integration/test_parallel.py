"""One video on several GPUs on the local cluster (issue 20, operator side): the Indexed Job
and headless Service an Animation with spec.parallelism gets, gang admission under the
operator's GPU cap, and the real runner's video at parallelism 2 equal to parallelism 1's,
killed worker or not."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_runner.contract import job_spec as contract
from tests.e2e.demo_inputs import DemoInputs
from tests.harness.environment import Environment
from tests.harness.processes import eventually, free_port
from tests.integration.test_gpu_time import _runner_processes, checkpoint_step
from tests.integration.test_operator import _upload
from tests.operator_env import (
    FAKE_RUNNER,
    REAL_RUNNER,
    animation,
    create_animation,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = pytest.mark.cluster

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def _parallel(gpus_per_pod: int) -> dict[str, Any]:
    """parallel.* settings with a port of this test's own: every pod of every concurrent
    test session shares the machine's loopback."""
    return {"gpus_per_pod": gpus_per_pod, "port": free_port(), "rendezvous_timeout_seconds": 120}


def _pods(api: client.ApiClient, ns: str, job: str) -> list[Any]:
    return list(client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"batch.kubernetes.io/job-name={job}").items)


def _explain(api: client.ApiClient, cluster: Environment, ns: str, name: str) -> str:
    """The Animation's status, its Jobs and pods and their logs' tails: what a timed-out
    wait leaves to read."""
    lines = [f"status: {get_animation(api, ns, name).get('status')}"]
    for job in jobs_of(api, ns, name):
        status = job.status
        lines.append(f"job {job.metadata.name}: active={status.active} failed={status.failed} "
                     f"succeeded={status.succeeded} conditions="
                     f"{[(c.type, c.reason) for c in status.conditions or []]}")
        for pod in _pods(api, ns, job.metadata.name):
            states = [s.state for s in pod.status.container_statuses or []]
            lines.append(f"  pod {pod.metadata.name} index "
                         f"{(pod.metadata.annotations or {}).get(COMPLETION_INDEX)} "
                         f"{pod.status.phase} {states}")
            log = (cluster.kubelet.workdir / "pods" / pod.metadata.uid / "container.log"
                   if cluster.kubelet else None)
            if log and log.exists():
                lines.append("    " + log.read_text(errors="replace")[-1500:].replace(
                    "\n", "\n    "))
    return "\n".join(lines)


def _document(job: Any) -> dict[str, Any]:
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env or []}
    return json.loads(env[contract.ENV_JOB_SPEC])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("gpus_per_pod", "pods", "gpus"), [(1, 2, "1"), (2, 1, "2")])
def test_parallelism_two_gets_the_planned_workers(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path, gpus_per_pod: int, pods: int, gpus: str,
) -> None:
    """Two pods of one Indexed Job (rank = completion index) with a headless Service, or
    one pod holding both GPUs, as parallel.gpusPerPod says."""
    ns = ready_namespace
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                                 PARALLEL=_parallel(gpus_per_pod))
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation(
            "pair", referenceImage="s3://inputs/a.png", seed=903, parallelism=2))
        job = eventually("the Job", lambda: (jobs_of(kube_api, ns, "pair") or [None])[0])
        name = job.metadata.name
        assert job.spec.completion_mode == "Indexed"
        assert (job.spec.completions, job.spec.parallelism) == (pods, pods)
        limits = job.spec.template.spec.containers[0].resources.limits
        assert limits["nvidia.com/gpu"] == gpus
        section = _document(job)["parallel"]
        assert (section["workers"], section["processesPerPod"]) == (2, gpus_per_pod)
        running = eventually(f"{pods} runner pods", lambda: (
            found if len(found := _pods(kube_api, ns, name)) == pods else None))
        indexes = sorted(p.metadata.annotations[COMPLETION_INDEX] for p in running)
        assert indexes == [str(i) for i in range(pods)]
        if pods > 1:
            # Stable names through the headless Service: <job>-<index>.<service>.
            assert sorted(p.spec.hostname for p in running) == [f"{name}-0", f"{name}-1"]
            assert {p.spec.subdomain for p in running} == {name}
            assert section["coordinator"] == f"{name}-0.{name}"
            service = client.CoreV1Api(kube_api).read_namespaced_service(name, ns)
            assert service.spec.cluster_ip == "None"
            assert service.spec.publish_not_ready_addresses is True
            owner = service.metadata.owner_references[0]
            assert (owner.kind, owner.name, owner.controller) == ("Animation", "pair", True)

            # It selects both workers' pods, which DNS names <job>-<index>.<service>
            # (pods here all share 127.0.0.1, which an EndpointSlice may not hold, so the
            # test kubelet plays DNS instead).
            selector = ",".join(f"{k}={v}" for k, v in service.spec.selector.items())
            selected = client.CoreV1Api(kube_api).list_namespaced_pod(
                ns, label_selector=selector).items
            assert sorted(p.metadata.name for p in selected) == sorted(
                p.metadata.name for p in running)
        else:
            assert section["coordinator"] == "127.0.0.1"
            assert not running[0].spec.subdomain
        status = wait_finished(kube_api, ns, "pair", timeout=120)["status"]
        assert status["phase"] == "Succeeded", (status, operator.output()[-3000:])
        assert status["parallelism"] == 2
        assert status["workers"] == (f"{pods} pods x 1 GPU" if pods > 1 else "1 pod x 2 GPUs")
        assert status["attempts"] == 1


def test_gang_admission_runs_one_and_queues_the_other_without_deadlock(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    """3 GPUs under the operator's cap and two Animations of 2: the first takes 2, the other
    waits (saying why) with no pod of it anywhere, then runs once the first is done."""
    ns = ready_namespace
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER, MAX_CONCURRENT=3,
                                 PARALLEL=_parallel(1))
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation(
            "first", referenceImage="s3://inputs/a.png", seed=906, parallelism=2))
        eventually("first running", lambda: (
            get_animation(kube_api, ns, "first").get("status") or {}).get("phase") == "Running",
            timeout=60)
        create_animation(kube_api, ns, animation(
            "second", referenceImage="s3://inputs/a.png", seed=902, parallelism=2))

        def queued() -> dict[str, Any] | None:
            status = get_animation(kube_api, ns, "second").get("status") or {}
            return status if status.get("phase") == "Queued" else None

        status = eventually("second queued", queued, timeout=60)
        assert status["reason"] == "WaitingForCapacity"
        assert "waiting for 2 GPUs, 1 free" in status["message"], status["message"]
        assert not jobs_of(kube_api, ns, "second")  # no half-started gang
        first = wait_finished(kube_api, ns, "first", timeout=120)["status"]
        second = wait_finished(kube_api, ns, "second", timeout=120)["status"]
        assert first["phase"] == second["phase"] == "Succeeded", operator.output()[-3000:]
        # Never more than 3 GPUs' worth of runner pods at once: the second's pods were all
        # created after the first's ended.
        first_pods = _pods(kube_api, ns, jobs_of(kube_api, ns, "first")[0].metadata.name)
        second_pods = _pods(kube_api, ns, jobs_of(kube_api, ns, "second")[0].metadata.name)
        ended = max(p.status.container_statuses[0].state.terminated.finished_at
                    for p in first_pods)
        started = min(p.metadata.creation_timestamp for p in second_pods)
        assert started >= ended.replace(microsecond=0)


# -- the real runner ---------------------------------------------------------------------------

# Tiny model on the CPU: 8 steps, 8-frame windows overlapping by 2 over a 1 s clip: several
# windows, so two workers each denoise some.
REAL_INFERENCE = {"width": 64, "height": 64, "steps": 8, "contextFrames": 8,
                  "contextOverlap": 2}


def _real_settings(minio: Any, **extra: Any) -> dict[str, str]:
    return operator_settings(
        minio.endpoint, runner=REAL_RUNNER, S3_ACCESS_KEY=minio.access_key,
        S3_SECRET_KEY=minio.secret_key, INFERENCE=REAL_INFERENCE, PARALLEL=_parallel(1),
        **extra)


@pytest.mark.slow  # the real runner on CPU: two workers and one
def test_two_workers_make_the_same_video_as_one(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    with running_operator(cluster.kubeconfig, ns, _real_settings(minio), tmp_path) as operator:
        for name, workers in (("one", 1), ("two", 2)):
            create_animation(kube_api, ns, animation(
                name, referenceImage=image, imageClipDuration=1, seed=4,
                parallelism=workers))
        one = wait_finished(kube_api, ns, "one", timeout=600)["status"]
        two = wait_finished(kube_api, ns, "two", timeout=600)["status"]
    assert one["phase"] == "Succeeded", (one, operator.output()[-3000:])
    assert two["phase"] == "Succeeded", (two, operator.output()[-3000:])
    assert two["parallelism"] == 2 and two["attempts"] == 1
    # The encoder is deterministic: equal bytes mean equal frames.
    assert two["output"]["sha256"] == one["output"]["sha256"]


@pytest.mark.slow  # the real runner on CPU, twice over
def test_a_killed_worker_restarts_the_gang_from_the_checkpoint(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    settings = _real_settings(minio, CHECKPOINTS={"enabled": True, "every_steps": 1,
                                                  "min_interval_seconds": 0})
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation(
            "killed", referenceImage=image, imageClipDuration=1, seed=4, parallelism=2))
        uid = eventually("the Animation's uid",
                         lambda: get_animation(kube_api, ns, "killed")["metadata"]["uid"])
        checkpoint = f"{ns}/.musepose-checkpoints/{uid}.safetensors"

        def saved_step() -> int:
            return checkpoint_step(minio, checkpoint)

        eventually("a checkpoint after 2 steps", lambda: saved_step() >= 2, timeout=300)
        job = jobs_of(kube_api, ns, "killed")[0].metadata.name
        worker_1 = next(p.metadata.name for p in _pods(kube_api, ns, job)
                        if p.metadata.annotations[COMPLETION_INDEX] == "1")
        for pid in _runner_processes(worker_1):
            os.kill(pid, signal.SIGKILL)  # as a node loss or the OOM killer ends it
        killed_at = saved_step()
        try:
            killed = wait_finished(kube_api, ns, "killed", timeout=900)["status"]
        except AssertionError as err:
            raise AssertionError(_explain(kube_api, cluster, ns, "killed")) from err
        assert killed["phase"] == "Succeeded", (killed, operator.output()[-3000:])
        # Worker 1's own death is the one failure counted; worker 0, which only lost its
        # peer, exited 76 and was not counted (the podFailurePolicy ignores it).
        counted = client.BatchV1Api(kube_api).read_namespaced_job_status(job, ns).status.failed
        assert counted == 1, _explain(kube_api, cluster, ns, "killed")
        create_animation(kube_api, ns, animation(
            "whole", referenceImage=image, imageClipDuration=1, seed=4))
        whole = wait_finished(kube_api, ns, "whole", timeout=600)["status"]
    assert whole["phase"] == "Succeeded" and not whole.get("resumedFromStep"), whole
    assert killed["output"]["sha256"] == whole["output"]["sha256"]
    assert killed["attempts"] == 2  # the whole gang started again, once
    assert killed["resumedFromStep"] >= killed_at >= 2
    print(f"parallel run resumed from step {killed['resumedFromStep']} of 8 after worker 1 "
          "was killed")
