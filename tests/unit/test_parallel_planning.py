"""One video on several GPUs, operator side (issue 20): spec.parallelism → the Indexed Job,
its headless Service, the runner document's ``parallel`` section, and what the Animation's
status reads from a parallel run's pods. Pure: no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from musepose_operator.admission.payload import payload_to_animation
from musepose_operator.api import AnimationSpec
from musepose_operator.api.crd import PRINTER_COLUMNS, openapi_schema
from musepose_operator.base import labels as L
from musepose_operator.base.types import Obj
from musepose_operator.planning import job_name
from musepose_operator.planning.job import times
from musepose_operator.planning.parallel import (
    JOB_NAME_LABEL,
    PARALLEL_LABEL,
    gpus_of,
    packing,
    plan_service,
    service_name,
)
from musepose_operator.settings import ParallelSettings
from musepose_operator.status.mapping import COMPLETION_INDEX, runner_done
from musepose_runner.contract import job_spec as contract
from tests.unit.test_planning import animation, make_settings, plan, pod_spec
from tests.unit.test_status_mapping import see, success, terminated


def parallel_settings(gpus_per_pod: int = 1, port: int = 29500, **extra: Any) -> Any:
    return make_settings(parallel=ParallelSettings(gpus_per_pod=gpus_per_pod, port=port),
                         **extra)


def document(job: Obj) -> Obj:
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    return json.loads(env[contract.ENV_JOB_SPEC])  # type: ignore[no-any-return]


def resources(job: Obj) -> Obj:
    return pod_spec(job)["containers"][0]["resources"]  # type: ignore[no-any-return]


# -- the API -------------------------------------------------------------------------------


def test_parallelism_defaults_to_one_and_is_bounded_at_admission() -> None:
    assert AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png"}).parallelism == 1
    for bad in (0, 17, -1):
        with pytest.raises(ValidationError):
            AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png", "parallelism": bad})
    field = openapi_schema()["properties"]["spec"]["properties"]["parallelism"]
    assert (field["type"], field["default"], field["minimum"], field["maximum"]) == (
        "integer", 1, 1, 16)
    assert "GPUs" in field["description"]
    status = openapi_schema()["properties"]["status"]["properties"]
    assert {"parallelism", "workers"} <= set(status)
    column = next(c for c in PRINTER_COLUMNS if c["name"] == "Workers")
    assert column["jsonPath"] == ".spec.parallelism" and column["priority"] == 1


def test_the_original_endpoints_payloads_keep_one_gpu() -> None:
    payload = {"id": "p1", "audio_file": "s3://inputs/a.wav", "output_path": "s3://outputs/p1.mp4",
               "reference_image": "s3://inputs/a.png"}
    converted = payload_to_animation(payload)
    assert "parallelism" not in converted["spec"]
    assert AnimationSpec.model_validate(converted["spec"]).parallelism == 1


# -- one GPU: today's Job ------------------------------------------------------------------


def test_parallelism_one_plans_todays_job() -> None:
    """Not one field of the single-GPU Job changes, whatever parallel.* says."""
    default = plan(animation())
    for settings in (parallel_settings(4, 31000), make_settings()):
        job = plan(animation(parallelism=1), settings)
        assert job == default
    assert "completionMode" not in default["spec"]
    assert "subdomain" not in pod_spec(default)
    assert PARALLEL_LABEL not in default["spec"]["template"]["metadata"]["labels"]
    assert "parallel" not in document(default)
    assert resources(default)["limits"]["nvidia.com/gpu"] == "1"


# -- packing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "per_pod_wanted", "pods", "per_pod"), [
    (2, 1, 2, 1), (2, 2, 1, 2), (2, 8, 1, 2), (4, 2, 2, 2), (6, 4, 2, 3), (6, 2, 3, 2), (3, 2, 3, 1),
    (16, 16, 1, 16), (1, 4, 1, 1),
])
def test_workers_are_packed_into_equal_pods(workers: int, per_pod_wanted: int, pods: int,
                                            per_pod: int) -> None:
    packed = packing(workers, per_pod_wanted)
    assert (packed.workers, packed.pods, packed.per_pod) == (workers, pods, per_pod)


def test_the_caps_count_every_gpu_of_an_animation() -> None:
    spec = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png", "parallelism": 3})
    assert gpus_of(spec, make_settings()) == 3
    assert gpus_of(spec, make_settings(gpu_count=0)) == 3  # CPU runs still take a slot each
    assert gpus_of(spec, make_settings(gpu_count=2)) == 6


# -- several pods: one Indexed Job and a headless Service -----------------------------------


def test_two_workers_on_two_pods_are_one_indexed_job() -> None:
    settings = parallel_settings(1, port=31234)
    body = animation(parallelism=2)
    job = plan(body, settings)
    name = job["metadata"]["name"]
    assert name == job_name("dance", body["metadata"]["uid"], 1, parallel=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 2, 2)
    assert pod_spec(job)["subdomain"] == service_name(name)
    assert resources(job)["limits"]["nvidia.com/gpu"] == "1"
    assert job["spec"]["template"]["metadata"]["labels"][PARALLEL_LABEL] == "true"
    section = document(job)["parallel"]
    assert section == {"workers": 2, "processesPerPod": 1,
                       "coordinator": f"{name}-0.{service_name(name)}", "port": 31234,
                       "rendezvousTimeoutSeconds": 600.0,
                       # the runner's defaults: a lost worker's bounds (issue 34)
                       "heartbeatTimeoutSeconds": 30.0, "stepTimeoutSeconds": 600.0}
    # The runner's own model accepts it.
    assert contract.JobSpec.model_validate(document(job)).parallel is not None


def test_two_workers_in_one_pod_share_its_loopback() -> None:
    job = plan(animation(parallelism=2), parallel_settings(2))
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (1, 1)
    assert "subdomain" not in pod_spec(job)
    assert resources(job) == {"requests": {"cpu": "8", "memory": "32Gi"},
                              "limits": {"memory": "64Gi", "nvidia.com/gpu": "2"}}
    section = document(job)["parallel"]
    assert (section["workers"], section["processesPerPod"], section["coordinator"]) == (
        2, 2, "127.0.0.1")


def test_a_mix_of_pods_and_gpus_per_pod() -> None:
    job = plan(animation(parallelism=6), parallel_settings(4))
    assert job["spec"]["completions"] == 2
    assert resources(job)["limits"]["nvidia.com/gpu"] == "3"
    assert document(job)["parallel"]["processesPerPod"] == 3


@pytest.mark.parametrize(("retries", "pods", "limit"), [(0, 2, 1), (3, 2, 7), (2, 4, 11)])
def test_retries_count_attempts_of_the_whole_gang(retries: int, pods: int, limit: int) -> None:
    """A rendezvous that fails can fail every pod that came (75 each): backoffLimit leaves
    room for ``retries`` such attempts; a lost worker's peers exit 76, which is not counted
    (the lost worker's own pod is, or its disruption is ignored); bad input still fails the
    Job at once, from any worker."""
    job = plan(animation(parallelism=pods, retries=retries), parallel_settings(1))
    assert job["spec"]["backoffLimit"] == limit
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert set(rules[0]["onExitCodes"]["values"]) >= {65, 78}
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[2] == {"action": "Ignore", "onExitCodes": {
        "containerName": "runner", "operator": "In", "values": [76]}}


def test_one_pod_counts_its_own_exit() -> None:
    """With one pod (one or several GPUs) there is no peer pod to lose: its launcher exits
    with the failing worker's own code, and no exit code is ignored."""
    for workers, per_pod in ((1, 1), (2, 2)):
        job = plan(animation(parallelism=workers), parallel_settings(per_pod))
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert [r for r in rules if r["action"] == "Ignore"] == [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]


def test_parallel_job_and_pod_names_stay_dns_labels() -> None:
    """Pods of an Indexed Job are named <job>-<index>: room for "-15" within 63."""
    long_name = "a" * 253
    job = plan(animation(name=long_name, parallelism=16), parallel_settings(1))
    name = job["metadata"]["name"]
    assert len(name) <= 60 and len(f"{name}-15") <= 63
    assert len(service_name(name)) <= 63


def test_the_service_name_starts_with_a_letter() -> None:
    assert service_name("dance-g1-abc123") == "dance-g1-abc123"
    assert service_name("1-dance-g1-abc123") == "w1-dance-g1-abc123"


def test_headless_service_selects_the_jobs_pods_and_goes_with_the_animation() -> None:
    body = animation(parallelism=2)
    settings = parallel_settings(1, port=31000)
    job = plan(body, settings)
    name = job["metadata"]["name"]
    service = plan_service(body, name, settings, job["metadata"]["labels"])
    assert service["metadata"]["name"] == service_name(name)
    assert service["metadata"]["namespace"] == "team-a"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["ports"][0]["port"] == 31000
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "Animation", body["metadata"]["uid"], True)
    # The Job controller labels each pod with its Job's name; the template carries the uid.
    pod_labels = {**job["spec"]["template"]["metadata"]["labels"], JOB_NAME_LABEL: name}
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_parallel_pods_stay_restricted() -> None:
    job = plan(animation(parallelism=4), parallel_settings(2))
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostIPC")


def test_kueue_admits_the_whole_gang_as_one_workload() -> None:
    """The queue label on the one Job: Kueue admits all its pods or none; never the
    job-min-parallelism annotation that would allow partial admission."""
    job = plan(animation(parallelism=4, queueName="gpus"), parallel_settings(1))
    assert job["metadata"]["labels"][L.KUEUE_QUEUE_LABEL] == "gpus"
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/job-min-parallelism" not in (job["metadata"].get("annotations") or {})
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4


@pytest.mark.parametrize(("quantity", "factor", "result"), [
    ("4", 2, "8"), ("500m", 3, "1500m"), ("16Gi", 2, "32Gi"), ("1.5", 2, "3"),
    ("0.5Gi", 3, "1.5Gi"), ("16Gi", 1, "16Gi"),
])
def test_resource_quantities_scale_with_the_workers_of_a_pod(quantity: str, factor: int,
                                                             result: str) -> None:
    assert times(quantity, factor) == result


# -- status from a parallel run's pods ------------------------------------------------------


def _indexed_job(*conditions: tuple[str, str], completions: int = 2) -> Obj:
    from tests.unit.test_status_mapping import job

    the_job = job(*conditions)
    the_job["spec"].update({"completionMode": "Indexed", "completions": completions,
                            "parallelism": completions})
    return the_job


def _of_index(pod: Obj, index: int) -> Obj:
    pod["metadata"]["annotations"] = {**pod["metadata"].get("annotations", {}),
                                      COMPLETION_INDEX: str(index)}
    return pod


def _peer_done() -> str:
    return contract.RunResult(succeeded=True, exit_code=0, reason="Completed").to_termination_message()


def test_the_result_is_worker_zeros_even_when_a_peer_ends_last() -> None:
    pods = [_of_index(terminated("w0", 0, message=success(), age=300), 0),
            _of_index(terminated("w1", 0, message=_peer_done(), age=200), 1)]
    seen = see(_indexed_job(("Complete", "Completed")), pods)
    assert seen.reason == "Succeeded" and seen.output and seen.output["sha256"]
    assert seen.attempts == 1


def test_attempts_count_worker_zeros_pods() -> None:
    pods = [_of_index(terminated("w0-a", 75, age=400), 0),
            _of_index(terminated("w1-a", 137, age=390), 1),
            _of_index(terminated("w0-b", 0, message=success(), age=200), 0),
            _of_index(terminated("w1-b", 0, message=_peer_done(), age=190), 1)]
    assert see(_indexed_job(("Complete", "Completed")), pods).attempts == 2


def test_bad_input_found_by_a_peer_fails_the_run_with_its_message() -> None:
    message = contract.RunResult(
        succeeded=False, exit_code=65, reason="InputUnreadable", message="frame 97 is corrupt",
        field="referenceVideo").to_termination_message()
    pods = [_of_index(terminated("w0", 143, age=300), 0),
            _of_index(terminated("w1", 65, message=message, age=200), 1)]
    seen = see(_indexed_job(("Failed", "PodFailurePolicy")), pods)
    assert (seen.reason, seen.message) == ("InputUnreadable", "frame 97 is corrupt")


def test_gpus_are_freed_only_when_every_worker_has_finished() -> None:
    the_job = _indexed_job()
    w0 = _of_index(terminated("w0", 0, message=success()), 0)
    w1 = _of_index(terminated("w1", 0, message=_peer_done()), 1)
    assert not runner_done([w0], the_job)
    assert runner_done([w0, w1], the_job)
    retried = _of_index(terminated("w1-b", 75, age=10), 1)
    assert not runner_done([w0, w1, retried], the_job)


# -- admission the API server cannot do -----------------------------------------------------


@pytest.mark.parametrize(("caps", "field"), [
    ({"max_concurrent": 3}, "jobs.maxConcurrent"),
    ({"max_concurrent_per_namespace": 2}, "jobs.maxConcurrentPerNamespace"),
])
def test_an_animation_needing_more_gpus_than_a_cap_is_refused(caps: dict[str, int],
                                                              field: str) -> None:
    """It could never start: all of its GPUs are never free at once."""
    from musepose_operator.admission.validation import check_spec

    settings = make_settings(**caps)
    spec = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png", "parallelism": 4})
    rejection = check_spec(spec, settings)
    assert rejection is not None and rejection.reason == "TooManyGPUs"
    assert field in rejection.message and "spec.parallelism" in rejection.message
    fits = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png", "parallelism": 2})
    assert check_spec(fits, settings) is None


# -- what the status says ----------------------------------------------------------------


@pytest.mark.parametrize(("workers", "per_pod", "gpu_count", "said"), [
    (1, 1, 1, "1 pod x 1 GPU"), (2, 1, 1, "2 pods x 1 GPU"), (2, 2, 1, "1 pod x 2 GPUs"),
    (6, 4, 1, "2 pods x 3 GPUs"), (2, 1, 0, "2 pods x 1 GPU"),
])
def test_status_says_how_many_workers_and_how_they_are_packed(
        workers: int, per_pod: int, gpu_count: int, said: str) -> None:
    from musepose_operator.api import Phase
    from musepose_operator.planning.parallel import workers_status
    from musepose_operator.status.document import status_document
    from musepose_operator.status.mapping import Observation

    spec = AnimationSpec.model_validate({"referenceImage": "s3://inputs/a.png",
                                         "parallelism": workers})
    extras = workers_status(spec, parallel_settings(per_pod, gpu_count=gpu_count))
    assert extras == {"parallelism": workers, "workers": said}
    seen = Observation(Phase.RUNNING, "Running", "attempt 1: denoising", extras=extras)
    document = status_document({}, 1, seen, job_name="j", output=None,
                               now="2026-01-01T00:00:00Z")
    assert (document["parallelism"], document["workers"]) == (workers, said)


def test_a_waiting_gang_says_how_many_gpus_it_waits_for() -> None:
    from musepose_operator.planning.parallel import waiting_message

    assert waiting_message(2, 1, 1) == "waiting for 2 GPUs, 1 free: number 1 in the queue"
    assert waiting_message(1, 0, 3) == "waiting for 1 GPU, 0 free: number 3 in the queue"
    assert waiting_message(4, -1, 2).startswith("waiting for 4 GPUs, 0 free")


def test_the_parallel_example_asks_for_four_gpus() -> None:
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[2] / "manifests/examples/animation-parallel.yaml"
    spec = AnimationSpec.model_validate(yaml.safe_load(path.read_text())["spec"])
    assert spec.parallelism == 4
