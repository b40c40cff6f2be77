"""The operator on the real control plane: Animations become Jobs, Jobs become status.

The operator runs as a real process; the test kubelet runs the runner pods: the real
``musepose-runner`` (tiny demo weights) for the happy path and bad input, and
tests/fixtures/fake_runner.py, which keeps the same contract, for injected faults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from musepose_operator.api import GROUP, PLURAL, VERSION
from tests.e2e.demo_inputs import DemoInputs
from tests.harness.environment import Environment
from tests.harness.processes import eventually, free_port
from tests.operator_env import (
    FAKE_RUNNER,
    REAL_RUNNER,
    OperatorProcess,
    animation,
    condition,
    create_animation,
    events_of,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def scheduling_classes(kube_api: client.ApiClient, ready_namespace: str) -> Iterator[str]:
    """A PriorityClass and a RuntimeClass named like the namespace (admission rejects pods
    naming unknown ones); cluster-scoped, so deleted afterwards."""
    name = ready_namespace
    client.SchedulingV1Api(kube_api).create_priority_class(
        {"metadata": {"name": name}, "value": 1000})
    client.NodeV1Api(kube_api).create_runtime_class({"metadata": {"name": name}, "handler": "runc"})
    yield name
    client.SchedulingV1Api(kube_api).delete_priority_class(name)
    client.NodeV1Api(kube_api).delete_runtime_class(name)


def _upload(minio: Any, key: str, path: Path) -> str:
    data = path.read_bytes()
    minio.client().put_object("inputs", key, io.BytesIO(data), len(data))
    return f"s3://inputs/{key}"


@pytest.mark.slow  # the real runner makes a video with the tiny model on CPU
def test_real_runner_happy_path(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path, scheduling_classes: str,
) -> None:
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    song = _upload(minio, f"{ns}/song.wav", media.song)
    settings = operator_settings(minio.endpoint, runner=REAL_RUNNER, PRESIGN_EXPIRY_SECONDS=600,
                                 S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key,
                                 NODE_SELECTOR={"musepose.io/test-kubelet": "true"},
                                 PRIORITY_CLASS_NAME=scheduling_classes,
                                 RUNTIME_CLASS_NAME=scheduling_classes)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
        create_animation(kube_api, ns, animation("first", referenceImage=image, audio=song,
                                                 imageClipDuration=1, seed=4))
        first = eventually("Accepted set on first sight",
                           lambda: condition(get_animation(kube_api, ns, "first"), "Accepted"))
        assert first["status"] == "True"
        wait = subprocess.run(
            [_kubectl(), "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "wait",
             "--for=condition=Finished", "anim/first", "--timeout=180s"],
            capture_output=True, text=True)
        assert wait.returncode == 0, (wait.stderr, operator.output())
    obj = get_animation(kube_api, ns, "first")
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(obj, "Succeeded")["status"] == "True"
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Stalled")["status"] == "False"
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    output = status["output"]
    assert output["uri"] == f"s3://videos/{ns}/first.mp4"
    assert output["frames"] == 24 and output["resolution"] == "256x256"
    assert output["hasAudio"] is True and len(output["sha256"]) == 64
    stat = minio.client().stat_object("videos", f"{ns}/first.mp4")
    assert stat.size == output["sizeBytes"]
    code, video = _download(output["presignedUrl"])  # the link works without any keys
    assert code == 200 and hashlib.sha256(video).hexdigest() == output["sha256"]
    jobs = jobs_of(kube_api, ns, "first")
    assert len(jobs) == 1
    _assert_job_fields(jobs[0], obj)
    reasons = {e.reason for e in events_of(kube_api, ns, "first")}
    assert {"JobCreated", "Succeeded"} <= reasons


def _download(url: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a plain GET, as a browser or curl would do it."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_presigned_url_downloads_the_video_until_it_expires(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    ns = ready_namespace
    video = b"\x00\x00\x00\x18ftypmp42 the finished video " + ns.encode()
    minio.client().put_object("videos", f"{ns}/shared.mp4", io.BytesIO(video), len(video))
    poster = b"\x89PNG\r\n\x1a\n the poster " + ns.encode()
    minio.client().put_object("videos", f"{ns}/shared.png", io.BytesIO(poster), len(poster))
    # The bucket is private: without a signature the object cannot be read.
    assert _download(f"http://{minio.endpoint}/videos/{ns}/shared.mp4")[0] == 403
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER, PRESIGN_EXPIRY_SECONDS=8,
                                 S3_ACCESS_KEY=minio.access_key, S3_SECRET_KEY=minio.secret_key)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path):
        create_animation(kube_api, ns, animation("shared", referenceImage="s3://inputs/a.png",
                                                 output=f"s3://videos/{ns}/shared.mp4"))
        output = wait_finished(kube_api, ns, "shared")["status"]["output"]
    url = output["presignedUrl"]
    assert url.startswith(f"http://{minio.endpoint}/videos/{ns}/shared.mp4?")
    assert _download(url) == (200, video)
    # The poster gets its own link (the web page's <video poster>).
    poster_url = output["posterPresignedUrl"]
    assert poster_url.startswith(f"http://{minio.endpoint}/videos/{ns}/shared.png?")
    assert _download(poster_url) == (200, poster)
    assert output["posterPresignedUrlExpiresAt"]
    expires = dt.datetime.fromisoformat(output["presignedUrlExpiresAt"].replace("Z", "+00:00"))
    assert expires <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=8)
    eventually("the link refused once it expired", lambda: _download(url)[0] == 403,
               timeout=60)


def _kubectl() -> str:
    from tests.harness.binaries import binary

    return binary("kubectl")


def _assert_job_fields(job: Any, obj: dict[str, Any]) -> None:
    meta, spec = job.metadata, job.spec
    assert meta.name.startswith("first-g1-") and len(meta.name) <= 63
    owner = meta.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Animation", "first", obj["metadata"]["uid"], True)
    for label in ("app.kubernetes.io/name", "app.kubernetes.io/managed-by",
                  "musepose.io/animation", "musepose.io/animation-uid"):
        assert label in meta.labels
    assert spec.backoff_limit == 3 and spec.active_deadline_seconds == 4 * 3600
    assert spec.ttl_seconds_after_finished == 600
    rules = spec.pod_failure_policy.rules
    assert rules[0].action == "FailJob" and 65 in rules[0].on_exit_codes.values
    assert rules[1].action == "Ignore" and rules[1].on_pod_conditions[0].type == "DisruptionTarget"
    pod = spec.template.spec
    container = pod.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert pod.node_selector == {"musepose.io/test-kubelet": "true"}
    namespace = obj["metadata"]["namespace"]
    assert pod.priority_class_name == namespace and pod.runtime_class_name == namespace
    assert pod.tolerations[0].key == "nvidia.com/gpu"
    assert pod.security_context.run_as_non_root and pod.security_context.seccomp_profile.type == (
        "RuntimeDefault")
    context = container.security_context
    assert context.read_only_root_filesystem and not context.allow_privilege_escalation
    assert context.capabilities.drop == ["ALL"]
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["weights"].persistent_volume_claim.read_only
    assert volumes["scratch"].empty_dir is not None and "data" in volumes
    env = {e.name: e for e in container.env}
    assert env["AWS_ACCESS_KEY_ID"].value_from.secret_key_ref.name == "musepose-s3"
    assert "MUSEPOSE_JOB_SPEC" in env and pod.service_account_name == "musepose-runner"


def test_bad_input_fails_at_once_without_retry(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    ns = ready_namespace
    settings = operator_settings(minio.endpoint, runner=REAL_RUNNER)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path):
        create_animation(kube_api, ns, animation(
            "missing", referenceImage="s3://inputs/nowhere/ref.png"))
        obj = wait_finished(kube_api, ns, "missing")
    status = obj["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InputNotFound"
    assert status["message"] == "referenceImage s3://inputs/nowhere/ref.png: object not found"
    assert condition(obj, "Stalled")["status"] == "True"
    assert condition(obj, "Failed")["status"] == "True"
    _assert_job_failed_without_retry(kube_api, ns, "missing")
    warnings = [e for e in events_of(kube_api, ns, "missing") if e.type == "Warning"]
    assert any("object not found" in e.message for e in warnings)


def _runner_pods(kube_api: client.ApiClient, ns: str, name: str) -> int:
    return len(client.CoreV1Api(kube_api).list_namespaced_pod(
        ns, label_selector=f"musepose.io/animation={name}").items)


def _assert_job_failed_without_retry(kube_api: client.ApiClient, ns: str, name: str) -> None:
    """The Job itself gave up on its first pod (podFailurePolicy FailJob): the Animation's
    status says Failed as soon as the runner exits, before the Job would retry."""
    def failed_by_policy() -> bool:
        (job,) = jobs_of(kube_api, ns, name)
        return any(c.type == "Failed" and c.status == "True" and c.reason == "PodFailurePolicy"
                   for c in job.status.conditions or [])

    eventually(f"the Job of {name} failed by its podFailurePolicy", failed_by_policy,
               timeout=30)
    assert _runner_pods(kube_api, ns, name) == 1


def test_wrong_storage_keys_fail_at_once_without_retry(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    media: DemoInputs, tmp_path: Path,
) -> None:
    """The real runner gets AccessDenied from MinIO: bad configuration, one pod, no retry."""
    ns = ready_namespace
    image = _upload(minio, f"{ns}/ref.png", media.reference_image)
    client.CoreV1Api(kube_api).patch_namespaced_secret("musepose-s3", ns, {
        "stringData": {"secretKey": "not-the-secret"}})
    settings = operator_settings(minio.endpoint, runner=REAL_RUNNER)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path):
        create_animation(kube_api, ns, animation("locked-out", referenceImage=image))
        obj = wait_finished(kube_api, ns, "locked-out")
    status = obj["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "StorageAccessDenied"), status
    # The runner checks the output location first, then the inputs: either names its field.
    assert status["message"].split(" ")[0] in ("output", "referenceImage"), status["message"]
    assert "access denied" in status["message"] and "credentials" in status["message"]
    assert condition(obj, "Stalled")["status"] == "True"
    _assert_job_failed_without_retry(kube_api, ns, "locked-out")


def test_unreachable_storage_is_retried(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, tmp_path: Path,
) -> None:
    """The real runner cannot reach the object store: transient, retried up to the limit."""
    ns = ready_namespace
    settings = operator_settings(f"127.0.0.1:{free_port()}", runner=REAL_RUNNER,
                                 BACKOFF_LIMIT=1)
    with running_operator(cluster.kubeconfig, ns, settings, tmp_path):
        create_animation(kube_api, ns, animation("offline", referenceImage="s3://inputs/a.png"))
        obj = wait_finished(kube_api, ns, "offline", timeout=180)
    status = obj["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "StorageUnavailable"), status
    assert status["attempts"] == 2
    assert _runner_pods(kube_api, ns, "offline") == 2


def test_transient_failure_is_retried_then_succeeds(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("flaky", referenceImage="s3://inputs/a.png",
                                             seed=75))
    obj = wait_finished(kube_api, ns, "flaky", timeout=120)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["attempts"] == 2


def test_settings_dependent_rejection_is_reported(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, {**animation("nomark", referenceImage="s3://inputs/a.png"),
                                    "spec": {"referenceImage": "s3://inputs/a.png"}})
    obj = wait_finished(kube_api, ns, "nomark", timeout=30)
    accepted = condition(obj, "Accepted")
    assert accepted["status"] == "False" and accepted["reason"] == "WatermarkImageRequired"
    assert "watermark.image" in obj["status"]["message"]
    assert jobs_of(kube_api, ns, "nomark") == []


def test_spec_edit_regenerates(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    api = client.CustomObjectsApi(kube_api)
    create_animation(kube_api, ns, animation("edit", referenceImage="s3://inputs/a.png",
                                             seed=930))
    first = eventually("first Job", lambda: jobs_of(kube_api, ns, "edit"))[0].metadata.name
    eventually("progress from the runner", lambda: (get_animation(kube_api, ns, "edit").get(
        "status") or {}).get("progress", {}).get("stage") == "generating", timeout=60)
    api.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "edit", {"spec": {"seed": 3}})
    second = eventually("the generation-2 Job", lambda: [
        j for j in jobs_of(kube_api, ns, "edit") if "-g2-" in j.metadata.name])[0]
    assert second.metadata.name != first
    eventually("the old Job deleted", lambda: all(
        "-g1-" not in j.metadata.name for j in jobs_of(kube_api, ns, "edit")))
    obj = wait_finished(kube_api, ns, "edit")
    assert obj["status"]["observedGeneration"] == 2 and obj["status"]["phase"] == "Succeeded"


def test_deletion_removes_children_and_keeps_the_video(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess,
    minio: Any,
) -> None:
    ns = ready_namespace
    data = b"finished video"
    minio.client().put_object("videos", f"{ns}/keep.mp4", io.BytesIO(data), len(data))
    create_animation(kube_api, ns, animation("keep", referenceImage="s3://inputs/a.png",
                                             output=f"s3://videos/{ns}/keep.mp4"))
    wait_finished(kube_api, ns, "keep")
    assert get_animation(kube_api, ns, "keep")["metadata"].get("finalizers") is None
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "keep")
    eventually("the Job garbage-collected", lambda: not jobs_of(kube_api, ns, "keep"))
    eventually("its pods garbage-collected", lambda: not client.CoreV1Api(
        kube_api).list_namespaced_pod(ns, label_selector="musepose.io/animation=keep").items)
    assert minio.client().stat_object("videos", f"{ns}/keep.mp4").size == len(data)


def test_operator_killed_mid_flight_makes_no_duplicate(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("survivor", referenceImage="s3://inputs/a.png",
                                             seed=908))
    eventually("the Job", lambda: jobs_of(kube_api, ns, "survivor"))
    fake_operator.kill()
    fake_operator.restart()
    obj = wait_finished(kube_api, ns, "survivor")
    assert obj["status"]["phase"] == "Succeeded"
    assert len(jobs_of(kube_api, ns, "survivor")) == 1


def _server_clock(kube_api: client.ApiClient, ns: str) -> dt.datetime:
    """The API server's clock at one-second resolution, as it stamps creationTimestamp (read
    from a dry-run create, which stores nothing)."""
    probe = client.CoreV1Api(kube_api).create_namespaced_config_map(
        ns, {"metadata": {"generateName": "clock-"}}, dry_run="All")
    return probe.metadata.creation_timestamp  # type: ignore[no-any-return]


@pytest.mark.parametrize("fake_operator", [{"MAX_CONCURRENT": 1}], indirect=True)
def test_concurrency_cap_and_queue_order(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    batch = client.BatchV1Api(kube_api)
    # Job creations are replayed from here, in the order the API server stored them.
    since = batch.list_namespaced_job(ns).metadata.resource_version
    create_animation(kube_api, ns, animation("a-running", referenceImage="s3://inputs/a.png",
                                             seed=910))
    eventually("the first Job", lambda: jobs_of(kube_api, ns, "a-running"))
    # c-low is older than b-low, a whole second older (creationTimestamp has 1 s resolution),
    # so age and name order disagree: the queue must follow age.
    create_animation(kube_api, ns, animation("c-low", referenceImage="s3://inputs/a.png",
                                             priority=0, seed=1))
    older = get_animation(kube_api, ns, "c-low")["metadata"]["creationTimestamp"]
    older_time = dt.datetime.fromisoformat(older.replace("Z", "+00:00"))
    eventually("the API server's clock a second later",
               lambda: _server_clock(kube_api, ns) > older_time, timeout=10)
    for name, priority in (("b-low", 0), ("d-high", 5)):
        create_animation(kube_api, ns, animation(name, referenceImage="s3://inputs/a.png",
                                                 priority=priority, seed=1))
    assert get_animation(kube_api, ns, "b-low")["metadata"]["creationTimestamp"] > older

    def positions() -> dict[str, int] | None:
        seen = {}
        for name in ("b-low", "c-low", "d-high"):
            status = get_animation(kube_api, ns, name).get("status") or {}
            if status.get("phase") != "Queued":
                return None
            seen[name] = (status.get("progress") or {}).get("queuePosition")
        return seen

    # Positions written before d-high arrived move once the queue pass refreshes them.
    expected = {"d-high": 1, "c-low": 2, "b-low": 3}
    eventually("the queue positions by priority, then age", lambda: positions() == expected,
               timeout=30)
    assert condition(get_animation(kube_api, ns, "b-low"), "Queued")["reason"] == (
        "WaitingForCapacity")
    for name in ("a-running", "d-high", "c-low", "b-low"):
        wait_finished(kube_api, ns, name, timeout=90)
    started = []
    for event in watch.Watch().stream(batch.list_namespaced_job, ns, resource_version=since,
                                      timeout_seconds=5):
        if event["type"] == "ADDED":
            started.append(event["object"].metadata.labels["musepose.io/animation"])
        if len(started) == 4:
            break
    assert started == ["a-running", "d-high", "c-low", "b-low"]


def test_kueue_label_path(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    batch = client.BatchV1Api(kube_api)
    create_animation(kube_api, ns, animation("queued", referenceImage="s3://inputs/a.png",
                                             queueName="gpu-queue"))
    job = eventually("the suspended Job", lambda: jobs_of(kube_api, ns, "queued"))[0]
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    obj = eventually("Queued/WaitingForKueue", lambda: (lambda o: o if (o.get("status") or {})
                     .get("reason") == "WaitingForKueue" else None)(
                         get_animation(kube_api, ns, "queued")))
    assert obj["status"]["phase"] == "Queued"
    # Kueue admits: it injects the flavor's node selector and unsuspends the Job.
    batch.patch_namespaced_job(job.metadata.name, ns, {"spec": {
        "suspend": False,
        "template": {"spec": {"nodeSelector": {"musepose.io/test-kubelet": "true"}}}}})
    final = wait_finished(kube_api, ns, "queued")
    assert final["status"]["phase"] == "Succeeded"
    job = batch.read_namespaced_job(job.metadata.name, ns)
    assert job.spec.suspend is False
    assert job.spec.template.spec.node_selector == {"musepose.io/test-kubelet": "true"}


def test_deadline_fails_with_deadline_exceeded(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("slow", referenceImage="s3://inputs/a.png",
                                             seed=999, timeoutSeconds=60))
    obj = wait_finished(kube_api, ns, "slow", timeout=150)
    assert obj["status"]["phase"] == "Failed"
    assert obj["status"]["reason"] == "DeadlineExceeded"
    assert "timeoutSeconds" in obj["status"]["message"]




def test_suspend_holds_the_run_until_resumed(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("held", referenceImage="s3://inputs/a.png",
                                             suspend=True))
    held = eventually("Suspended", lambda: (lambda o: o if (o.get("status") or {}).get(
        "phase") == "Suspended" else None)(get_animation(kube_api, ns, "held")))
    assert "spec.suspend" in held["status"]["message"]
    assert jobs_of(kube_api, ns, "held") == []  # nothing starts while held
    assert not client.CoreV1Api(kube_api).list_namespaced_pod(
        ns, label_selector="musepose.io/animation=held").items
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "held", {"spec": {"suspend": False}})
    assert wait_finished(kube_api, ns, "held")["status"]["phase"] == "Succeeded"
    assert len(jobs_of(kube_api, ns, "held")) == 1


def _pods(kube_api: client.ApiClient, ns: str, name: str) -> list[Any]:
    return list(client.CoreV1Api(kube_api).list_namespaced_pod(
        ns, label_selector=f"musepose.io/animation={name}").items)


def test_suspending_a_running_animation_suspends_its_job_until_resumed(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    """spec.suspend on a running Animation suspends its Job (the Job controller removes the
    pod, freeing the GPU); resuming the same Job runs it to completion."""
    ns = ready_namespace
    api = client.CustomObjectsApi(kube_api)
    batch = client.BatchV1Api(kube_api)
    create_animation(kube_api, ns, animation("pausable", referenceImage="s3://inputs/a.png",
                                             seed=915))  # the fake runner works 15 s
    eventually("the runner reporting progress", lambda: (get_animation(
        kube_api, ns, "pausable").get("status") or {}).get("progress", {}).get(
        "stage") == "generating", timeout=60)
    (job,) = jobs_of(kube_api, ns, "pausable")
    assert job.spec.suspend is False
    running_pod = _pods(kube_api, ns, "pausable")[0].metadata.name

    api.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "pausable",
                                       {"spec": {"suspend": True}})
    eventually("the Job suspended", lambda: batch.read_namespaced_job(
        job.metadata.name, ns).spec.suspend is True, timeout=30)
    eventually("the running pod gone", lambda: running_pod not in {
        p.metadata.name for p in _pods(kube_api, ns, "pausable")}, timeout=60)
    held = eventually("Suspended", lambda: (lambda o: o if (o.get("status") or {}).get(
        "phase") == "Suspended" else None)(get_animation(kube_api, ns, "pausable")), timeout=30)
    assert "spec.suspend" in held["status"]["message"]
    assert [j.metadata.name for j in jobs_of(kube_api, ns, "pausable")] == [job.metadata.name]

    api.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "pausable",
                                       {"spec": {"suspend": False}})
    eventually("the Job resumed", lambda: batch.read_namespaced_job(
        job.metadata.name, ns).spec.suspend is False, timeout=30)
    final = wait_finished(kube_api, ns, "pausable", timeout=90)
    assert final["status"]["phase"] == "Succeeded", final["status"]
    assert [j.metadata.name for j in jobs_of(kube_api, ns, "pausable")] == [job.metadata.name]
    reasons = [e.reason for e in events_of(kube_api, ns, "pausable")]
    assert "Suspended" in reasons and "Resumed" in reasons, reasons


@pytest.mark.parametrize("fake_operator", [{"PENDING_TIMEOUT_SECONDS": 30,
                                            "NODE_SELECTOR": {"no-such-node": "true"}}],
                         indirect=True)
def test_unschedulable_runner_fails_after_the_pending_timeout(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, animation("nowhere", referenceImage="s3://inputs/a.png"))
    obj = wait_finished(kube_api, ns, "nowhere", timeout=120)
    status = obj["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable"), status
    assert "could not start" in status["message"]
    eventually("the stuck Job deleted", lambda: not jobs_of(kube_api, ns, "nowhere"))
    assert "Unschedulable" in {e.reason for e in events_of(kube_api, ns, "nowhere")}


def _get(url: str) -> tuple[int, str]:
    """(HTTP status, body); (0, "") while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.URLError:
        return 0, ""


def _metric(text: str, name: str) -> float:
    """The value of one sample line, e.g. 'musepose_animations{phase="Succeeded"}'."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name} in the metrics")


def test_liveness_and_metrics(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    liveness = fake_operator.argv[fake_operator.argv.index("--liveness") + 1]
    metrics = f"http://127.0.0.1:{fake_operator.env['MUSEPOSE_METRICS_PORT']}/metrics"
    assert eventually("the liveness endpoint", lambda: _get(liveness)[0] == 200, timeout=30)
    create_animation(kube_api, ns, animation("counted", referenceImage="s3://inputs/a.png"))
    create_animation(kube_api, ns, animation("refused", referenceImage="s3://inputs/a.png",
                                             seed=65))
    for name in ("counted", "refused"):
        wait_finished(kube_api, ns, name)

    def scraped() -> str | None:
        # The phase gauges follow the operator's cache, refreshed every queue pass (<= 2 s).
        text = _get(metrics)[1]
        counted = ('musepose_animations{phase="Succeeded"} 1.0' in text
                   and 'musepose_animations{phase="Failed"} 1.0' in text)
        return text if counted and "musepose_failures_total{" in text else None

    text = eventually("the metrics to count both", scraped, timeout=30)
    assert _metric(text, "musepose_queue_depth") == 0
    assert _metric(text, "musepose_create_to_job_seconds_count") >= 1
    assert _metric(text, "musepose_job_duration_seconds_count") >= 1
    failures = [line for line in text.splitlines()
                if line.startswith("musepose_failures_total{")]
    assert any(line.endswith(" 1.0") for line in failures), failures
