"""Job planning and settings-dependent checks: what the operator asks the cluster to run.

Every test feeds an Animation as a watch delivers it (a plain dict) plus operator Settings
into the pure planning code and asserts on the Job manifest or the rejection a user sees.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from musepose_operator.admission.validation import Rejection, check_spec
from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.base import labels as L
from musepose_operator.planning import job_name, plan_job, plan_runner_document
from musepose_operator.planning.job import default_output, label_value
from musepose_operator.planning.reuse import runs_the_same
from musepose_operator.settings import S3Settings, Settings
from musepose_runner.contract import job_spec as contract
from musepose_runner.contract.job_spec import ExitCode, JobSpec

UID = "6f1c2a9e-1b7d-4c55-9a0e-0d3b7f4e2a11"
IMAGE = "s3://inputs/people/ref.png"
DEFAULT_WATERMARK = "s3://assets/logo.png"

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def make_settings(**overrides: Any) -> Settings:
    """Operator settings with a default watermark, so a minimal spec is plannable."""
    return Settings(**{"default_watermark": DEFAULT_WATERMARK, **overrides})


def animation(name: str = "dance", namespace: str = "team-a", uid: str = UID,
              generation: int = 1, **spec: Any) -> dict[str, Any]:
    """An Animation as the watch delivers it; ``spec`` is in the API's camelCase."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": uid,
                     "generation": generation, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"referenceImage": IMAGE, **spec},
    }


def plan(body: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The Job the operator would create for ``body``."""
    spec = AnimationSpec.model_validate(body["spec"])
    return plan_job(body, spec, settings or make_settings())


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def runner(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(job)["containers"]
    return container


def env_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runner's environment by variable name (each name must appear once)."""
    entries = runner(job)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e for e in entries}


def document(job: dict[str, Any]) -> dict[str, Any]:
    """The job document the runner reads, as raw JSON (after checking the contract accepts it)."""
    text = env_of(job)[contract.ENV_JOB_SPEC]["value"]
    JobSpec.model_validate_json(text)
    return json.loads(text)


# ---------------------------------------------------------------------------------------
# The Job's name


def test_job_name_is_stable_per_generation_and_changes_with_it() -> None:
    """A restarted operator finds the Job it made; a spec change gets a fresh Job."""
    first = plan(animation(generation=3))["metadata"]["name"]
    assert plan(animation(generation=3))["metadata"]["name"] == first
    # sha256("<uid>/3")[:6] is b5ed1e.
    assert first == "dance-g3-b5ed1e"
    assert first.startswith("dance-g3-")
    assert plan(animation(generation=4))["metadata"]["name"] != first


def test_job_name_differs_between_animations_with_the_same_long_prefix() -> None:
    """Two long names cut to the same prefix (or a re-created Animation) never share a Job."""
    a = job_name("x" * 60 + "-one", "uid-1", 1)
    b = job_name("x" * 60 + "-two", "uid-2", 1)
    assert a != b
    assert job_name("dance", "uid-old", 1) != job_name("dance", "uid-new", 1)


@pytest.mark.parametrize("name", [
    "dance",
    "a" * 63,
    "a" * 253,
    "a" * 52 + "-" + "b" * 200,  # the cut lands right after a dash
    "a" * 52 + "." + "b" * 200,  # ... or a dot
    "team.dance-01",
], ids=["short", "63", "253", "cut-at-dash", "cut-at-dot", "dotted"])
@pytest.mark.parametrize("generation", [1, 12345678])
def test_job_name_is_a_valid_name_and_label_value(name: str, generation: int) -> None:
    """Any Animation name yields a Job name the API server accepts (and its pods' job-name label)."""
    planned = plan(animation(name=name, generation=generation))["metadata"]["name"]
    assert len(planned) <= 63
    assert DNS_SUBDOMAIN.match(planned), planned
    assert LABEL_VALUE.match(planned), planned
    assert re.search(rf"-g{generation}-[0-9a-f]{{6}}$", planned), planned
    assert planned.startswith(name[:20])  # recognisably the Animation's Job


@pytest.mark.parametrize(("edit", "same"), [
    ({"suspend": True}, True),  # suspending a run keeps its Job (it is suspended, not replaced)
    ({"priority": 5}, True),  # queue order only
    ({"outputReclaimPolicy": "Delete"}, True),  # what happens on deletion only
    ({"seed": 2}, False),
    ({"referenceImage": "s3://inputs/people/other.png"}, False),
    ({"retries": 0}, False),  # the Job's backoffLimit
    ({"timeoutSeconds": 600}, False),  # the Job's activeDeadlineSeconds
    ({"queueName": "gpu-queue"}, False),  # Kueue's label
])
def test_a_jobs_run_is_kept_only_across_edits_the_run_never_sees(edit: dict[str, Any],
                                                                   same: bool) -> None:
    """Every spec edit bumps the generation; only edits that change what runs get a new Job."""
    running = plan(animation(generation=1, seed=1))
    later = plan(animation(generation=2, seed=1) | {"spec": {"referenceImage": IMAGE,
                                                             "seed": 1, **edit}})
    assert runs_the_same(running, later) is same


def test_a_job_being_deleted_is_never_kept() -> None:
    running = plan(animation(generation=1))
    running["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert runs_the_same(running, plan(animation(generation=2, suspend=True))) is False


# ---------------------------------------------------------------------------------------
# Metadata: owner and labels


def test_job_is_owned_by_the_animation() -> None:
    """Deleting the Animation garbage-collects its Job, and the Job blocks that until gone."""
    job = plan(animation())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "musepose.io/v1alpha1", "kind": "Animation", "name": "dance", "uid": UID,
        "controller": True, "blockOwnerDeletion": True,
    }]


def test_job_and_pod_carry_the_recommended_and_animation_labels() -> None:
    """`kubectl get jobs,pods -l musepose.io/animation=dance` finds the run's Job and pods."""
    job = plan(animation(generation=2))
    expected = {
        "app.kubernetes.io/name": "musepose-runner",
        "app.kubernetes.io/instance": "dance",
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/managed-by": "musepose-operator",
        "app.kubernetes.io/part-of": "musepose",
        "musepose.io/animation": "dance",
        "musepose.io/animation-uid": UID,
        "musepose.io/generation": "2",
    }
    for where in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert {k: where.get(k) for k in expected} == expected
    # The operator's own watches select on this label.
    assert L.MANAGED_SELECTOR.items() <= job["metadata"]["labels"].items()


def test_labels_stay_valid_for_a_253_character_animation_name() -> None:
    """A maximal Animation name still yields a Job the API server accepts (labels ≤ 63)."""
    long_name = "a" * 200 + "-" + "b" * 52
    job = plan(animation(name=long_name))
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        for key, value in labels.items():
            assert len(value) <= 63 and LABEL_VALUE.match(value), (key, value)
    assert job["metadata"]["labels"]["musepose.io/animation-uid"] == UID
    # The same long name always maps to the same label; another long name to another one.
    # Cut to 54 characters plus "-" and sha256(name)[:8].
    assert job["metadata"]["labels"]["musepose.io/animation"] == "a" * 54 + "-6f235dad"
    assert label_value(long_name) != label_value("a" * 200 + "-" + "c" * 52)
    assert label_value("dance") == "dance"


# ---------------------------------------------------------------------------------------
# Scheduling and resources


def test_gpu_limit_uses_the_configured_resource_name() -> None:
    """Clusters with another GPU vendor get their resource, and only it."""
    limits = runner(plan(animation(), make_settings(
        gpu_resource_name="amd.com/gpu", gpu_count=2)))["resources"]["limits"]
    assert limits["amd.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in limits


def test_no_gpu_limit_when_gpu_count_is_zero() -> None:
    """A CPU-only development cluster can schedule the runner."""
    limits = runner(plan(animation(), make_settings(gpu_count=0)))["resources"]["limits"]
    assert not any("gpu" in name for name in limits)


def test_scheduling_settings_reach_the_pod() -> None:
    """Node selector, tolerations, priority class and runtime class are the admin's."""
    toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu",
                  "effect": "NoSchedule"}
    pod = pod_spec(plan(animation(), make_settings(
        node_selector={"gpu": "a100"}, tolerations=[toleration],
        priority_class_name="batch-low", runtime_class_name="nvidia")))
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == [toleration]
    assert pod["priorityClassName"] == "batch-low"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["restartPolicy"] == "Never"


def test_unset_priority_and_runtime_class_are_left_out() -> None:
    """Without settings, the cluster's defaults apply (no empty class names)."""
    pod = pod_spec(plan(animation(), make_settings(
        priority_class_name=None, runtime_class_name=None)))
    assert "priorityClassName" not in pod and "runtimeClassName" not in pod


# ---------------------------------------------------------------------------------------
# Volumes


def _volumes(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(job)["volumes"]}


def _mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in runner(job)["volumeMounts"]}


def test_weights_are_mounted_read_only() -> None:
    """The runner can read the model weights but never change them for other runs."""
    job = plan(animation(), make_settings(weights_pvc="gpu-weights", weights_mount_path="/w"))
    assert _volumes(job)["weights"]["persistentVolumeClaim"] == {
        "claimName": "gpu-weights", "readOnly": True}
    assert _mounts(job)["weights"]["mountPath"] == "/w"
    assert _mounts(job)["weights"]["readOnly"] is True
    assert env_of(job)[contract.ENV_WEIGHTS]["value"] == "/w"


def test_data_volume_is_mounted_only_when_configured() -> None:
    """Plain paths in a spec resolve on the shared data volume the admin configured."""
    job = plan(animation(), make_settings(data_pvc="shared-data", data_mount_path="/data"))
    assert _volumes(job)["data"]["persistentVolumeClaim"]["claimName"] == "shared-data"
    assert _mounts(job)["data"]["mountPath"] == "/data"
    assert env_of(job)[contract.ENV_DATA_ROOT]["value"] == "/data"

    without = plan(animation(), make_settings(data_pvc=None))
    assert "data" not in _volumes(without) and "data" not in _mounts(without)


def test_scratch_is_an_empty_dir_the_runner_is_told_about() -> None:
    """Intermediate frames go to a size-limited emptyDir, not the read-only root filesystem."""
    job = plan(animation(), make_settings(scratch_size_limit="50Gi"))
    assert _volumes(job)["scratch"]["emptyDir"] == {"sizeLimit": "50Gi"}
    scratch = env_of(job)[contract.ENV_SCRATCH]["value"]
    assert _mounts(job)["scratch"]["mountPath"] == scratch


# ---------------------------------------------------------------------------------------
# Credentials and security


def test_s3_credentials_come_only_from_the_secret() -> None:
    """Keys are referenced from a Secret; neither the pod env nor the job document holds one."""
    job = plan(animation(), make_settings(s3=S3Settings(
        endpoint="minio.storage:9000", secure=False, credentials_secret="s3-creds",
        access_key_key="id", secret_key_key="key")))
    env = env_of(job)
    assert env[contract.ENV_S3_ACCESS_KEY] == {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {
        "secretKeyRef": {"name": "s3-creds", "key": "id"}}}
    assert env[contract.ENV_S3_SECRET_KEY] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
        "secretKeyRef": {"name": "s3-creds", "key": "key"}}}
    assert env[contract.ENV_S3_ENDPOINT]["value"] == "minio.storage:9000"
    assert env[contract.ENV_S3_SECURE]["value"] == "false"
    # Every Secret-derived variable is a reference, never a literal value.
    for entry in runner(job)["env"]:
        if "secretKeyRef" in json.dumps(entry):
            assert "value" not in entry
    assert "s3-creds" not in env[contract.ENV_JOB_SPEC]["value"]


def test_no_credential_variables_without_a_secret() -> None:
    """With no Secret configured (e.g. IRSA), the runner gets no empty key variables."""
    env = env_of(plan(animation(), make_settings(s3=S3Settings(credentials_secret=None))))
    assert contract.ENV_S3_ACCESS_KEY not in env and contract.ENV_S3_SECRET_KEY not in env


def test_runner_pod_meets_the_restricted_pod_security_standard() -> None:
    """Namespaces enforcing `restricted` admit the runner pod."""
    job = plan(animation(), make_settings(run_as_user=4242))
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 4242
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert runner(job)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def test_runner_result_or_its_log_tail_becomes_the_termination_message() -> None:
    """Status mapping reads the result from the termination message; a crash before the
    result is written still leaves the log tail there (FallbackToLogsOnError)."""
    job = plan(animation())
    container = runner(job)
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert env_of(job)["MUSEPOSE_RESULT_PATH"]["value"] == "/dev/termination-log"


def test_runner_service_account_gets_a_token_for_progress_reports() -> None:
    """The runner patches its pod's progress annotation with its ServiceAccount's token."""
    pod = pod_spec(plan(animation(), make_settings(runner_service_account="dance-runner")))
    assert pod["serviceAccountName"] == "dance-runner"
    assert pod["automountServiceAccountToken"] is True
    assert env_of(plan(animation()))["MUSEPOSE_SERVICEACCOUNT_DIR"]["value"] == (
        "/var/run/secrets/kubernetes.io/serviceaccount")
    default = pod_spec(plan(animation()))
    assert default["serviceAccountName"] == "musepose-runner"


def test_no_service_account_means_no_token_in_the_pod() -> None:
    """Without a runner ServiceAccount the pod runs as `default` with no API token mounted."""
    pod = pod_spec(plan(animation(), make_settings(runner_service_account=None)))
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False


def test_image_pull_secrets_reach_the_pod() -> None:
    """A private registry's pull secrets are named on the pod, in the admin's order."""
    pod = pod_spec(plan(animation(), make_settings(image_pull_secrets=["regcred", "mirror"],
                                                   image_pull_policy="Always")))
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert runner(plan(animation(), make_settings(image_pull_policy="Always")))[
        "imagePullPolicy"] == "Always"
    assert "imagePullSecrets" not in pod_spec(plan(animation()))


def test_resource_requests_and_limits_come_from_settings() -> None:
    """The scheduler reserves the admin's CPU and memory; memory is capped; one GPU."""
    resources = runner(plan(animation(), make_settings(
        cpu_request="6", memory_request="24Gi", memory_limit="48Gi")))["resources"]
    assert resources == {
        "requests": {"cpu": "6", "memory": "24Gi"},
        "limits": {"memory": "48Gi", "nvidia.com/gpu": "1"},
    }
    defaults = runner(plan(animation()))["resources"]
    assert defaults == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
    }


# ---------------------------------------------------------------------------------------
# Retries, deadlines, queueing


def test_pod_failure_policy_never_retries_bad_input_and_ignores_disruptions() -> None:
    """Bad input / bad config fail at once; an evicted or preempted pod costs no retry."""
    job = plan(animation())
    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail_job = [r for r in rules if r["action"] == "FailJob"]
    assert len(fail_job) == 1
    on_codes = fail_job[0]["onExitCodes"]
    assert on_codes["operator"] == "In" and on_codes["containerName"] == runner(job)["name"]
    # Out of memory fails the Job too: the operator's lower-VRAM retry is a Job of its own;
    # so does a non-finite run (70): the runner already ran it again in another dtype.
    assert {ExitCode.BAD_INPUT, ExitCode.BAD_CONFIG, ExitCode.USAGE,
            ExitCode.OUT_OF_MEMORY, ExitCode.NON_FINITE} == set(on_codes["values"])
    assert ExitCode.TRANSIENT not in on_codes["values"]
    assert ExitCode.INTERNAL_ERROR not in on_codes["values"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    assert pod_spec(job)["restartPolicy"] == "Never"  # required by podFailurePolicy


def test_job_limits_come_from_settings() -> None:
    """The admin's retry count, deadline and cleanup delay apply by default."""
    spec = plan(animation(), make_settings(
        backoff_limit=5, active_deadline_seconds=7200, ttl_seconds_after_finished=600))["spec"]
    assert spec["backoffLimit"] == 5
    assert spec["activeDeadlineSeconds"] == 7200
    assert spec["ttlSecondsAfterFinished"] == 600


def test_finished_jobs_are_kept_when_no_ttl_is_set() -> None:
    no_ttl = plan(animation(), make_settings(ttl_seconds_after_finished=None))["spec"]
    assert "ttlSecondsAfterFinished" not in no_ttl


@pytest.mark.parametrize("retries", [0, 7])
def test_per_animation_retries_and_timeout_override_settings(retries: int) -> None:
    """spec.retries (even 0) and spec.timeoutSeconds win over the operator's defaults."""
    spec = plan(animation(retries=retries, timeoutSeconds=900),
                make_settings(backoff_limit=3, active_deadline_seconds=7200))["spec"]
    assert spec["backoffLimit"] == retries
    assert spec["activeDeadlineSeconds"] == 900


@pytest.mark.parametrize(("spec_queue", "default_queue", "expected"), [
    ("gpu-queue", None, "gpu-queue"),
    (None, "cluster-queue", "cluster-queue"),
    ("gpu-queue", "cluster-queue", "gpu-queue"),
])
def test_kueue_queue_label_and_suspended_job(spec_queue: str | None, default_queue: str | None,
                                             expected: str) -> None:
    """A queued Job is created suspended with the queue label, for Kueue to admit."""
    extra: dict[str, Any] = {"queueName": spec_queue} if spec_queue else {}
    job = plan(animation(**extra), make_settings(default_queue_name=default_queue))
    assert job["metadata"]["labels"][L.KUEUE_QUEUE_LABEL] == expected
    assert job["spec"]["suspend"] is True


def test_without_a_queue_the_job_starts_unless_suspended() -> None:
    """No Kueue: the Job runs at once; spec.suspend holds it."""
    job = plan(animation(), make_settings(default_queue_name=None))
    assert L.KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]
    assert job["spec"]["suspend"] is False
    held = plan(animation(suspend=True), make_settings(default_queue_name=None))
    assert held["spec"]["suspend"] is True
    assert L.KUEUE_QUEUE_LABEL not in held["metadata"]["labels"]


# ---------------------------------------------------------------------------------------
# The job document handed to the runner


def test_job_document_resolves_every_default() -> None:
    """The runner gets explicit values, so operator and runner defaults cannot drift apart."""
    settings = make_settings(s3=S3Settings(default_bucket="videos"))
    doc = document(plan(animation(name="dance", namespace="team-a", generation=2), settings))
    assert doc["version"] == contract.CONTRACT_VERSION
    assert doc["animation"] == {"namespace": "team-a", "name": "dance", "uid": UID,
                                "generation": 2}
    assert doc["referenceImage"] == IMAGE
    assert doc["output"] == "s3://videos/team-a/dance.mp4"
    assert doc["seed"] == 1
    assert doc["imageClipDuration"] == 5.0
    assert doc["lowerVram"] is False
    assert doc["removeBackground"] is False
    assert doc["watermark"] == {"enabled": True, "image": DEFAULT_WATERMARK, "width": 100,
                                "offset": 20, "position": "bottom-right"}
    assert doc["audioFit"] == "trim"
    for absent in ("referenceVideo", "motionSequence", "audio"):
        assert absent not in doc


def test_job_document_carries_every_field_the_user_set() -> None:
    """Nothing the user wrote is lost between the Animation and the runner."""
    body = animation(
        referenceVideo="https://cdn.example.com/dance.mp4", audio="s3://inputs/song.mp3",
        output="s3://videos/out/a.mp4", seed=42, imageClipDuration=2.5, lowerVram=True,
        watermark={"enabled": True, "image": "s3://assets/mine.png", "width": 64, "offset": 8,
                   "position": "top-left"},
        removeBackground=True, audioFit="loop")
    doc = document(plan(body, make_settings(allowed_https_hosts=["cdn.example.com"])))
    assert doc["referenceVideo"] == "https://cdn.example.com/dance.mp4"
    assert doc["audio"] == "s3://inputs/song.mp3"
    assert doc["output"] == "s3://videos/out/a.mp4"
    assert doc["seed"] == 42
    assert doc["imageClipDuration"] == 2.5
    assert doc["lowerVram"] is True
    assert (doc["inference"]["width"], doc["inference"]["height"]) == (512, 512)
    assert doc["removeBackground"] is True
    assert doc["watermark"] == {"enabled": True, "image": "s3://assets/mine.png", "width": 64,
                                "offset": 8, "position": "top-left"}
    assert doc["audioFit"] == "loop"
    assert doc["allowedHttpsHosts"] == ["cdn.example.com"]


def test_motion_sequence_reaches_the_runner() -> None:
    doc = document(plan(animation(motionSequence="s3://inputs/poses.json")))
    assert doc["motionSequence"] == "s3://inputs/poses.json"
    assert "referenceVideo" not in doc


def test_disabled_watermark_needs_no_image() -> None:
    """With the watermark off, the runner is told so and no default image is required."""
    spec = AnimationSpec.model_validate({"referenceImage": IMAGE,
                                         "watermark": {"enabled": False}})
    planned = plan_runner_document(spec, make_settings(default_watermark=None), namespace="ns",
                            name="n", uid=UID, generation=1)
    assert planned.watermark.enabled is False
    assert planned.watermark.image is None


def test_lower_vram_changes_only_the_resolution() -> None:
    """lowerVram renders at 512 px and leaves the admin's other inference settings alone."""
    settings = make_settings()
    normal = plan_runner_document(AnimationSpec(reference_image=IMAGE), settings, namespace="ns",
                           name="n", uid=UID, generation=1).inference
    low = plan_runner_document(AnimationSpec(reference_image=IMAGE, lower_vram=True), settings,
                        namespace="ns", name="n", uid=UID, generation=1).inference
    assert (normal.width, normal.height) == (768, 768)
    assert (low.width, low.height) == (512, 512)
    assert low.model_copy(update={"width": 768, "height": 768}) == normal


def test_default_output_is_per_namespace_and_name() -> None:
    settings = make_settings(s3=S3Settings(default_bucket="renders"))
    assert default_output(settings, "team-b", "solo") == "s3://renders/team-b/solo.mp4"


# ---------------------------------------------------------------------------------------
# check_spec: what admission cannot know


def _check(settings: Settings, **spec: Any) -> Rejection | None:
    return check_spec(AnimationSpec.model_validate({"referenceImage": IMAGE, **spec}), settings)


@pytest.mark.parametrize(("spec", "settings"), [
    ({}, {"default_watermark": DEFAULT_WATERMARK}),
    ({"watermark": {"image": "s3://assets/mine.png"}}, {"default_watermark": None}),
    ({"watermark": {"enabled": False}}, {"default_watermark": None}),
    ({"referenceVideo": "https://CDN.example.com/a.mp4"},
     {"allowed_https_hosts": ["cdn.example.com"]}),
    ({"audio": "https://cdn.example.com/a.mp3"}, {"allowed_https_hosts": ["CDN.Example.com"]}),
    ({"referenceImage": "/inputs/ref.png", "output": "/outputs/a.mp4"},
     {"data_pvc": "shared-data"}),
], ids=["default-watermark", "own-watermark", "watermark-off", "allowed-host",
        "allowed-host-case", "paths-with-data-volume"])
def test_valid_specs_pass(spec: dict[str, Any], settings: dict[str, Any]) -> None:
    """Specs the operator can run are accepted."""
    assert _check(make_settings(**settings), **spec) is None


def test_watermark_image_required_without_a_default() -> None:
    """The user learns the field and both ways out."""
    rejection = _check(make_settings(default_watermark=None))
    assert rejection is not None
    assert rejection.reason == "WatermarkImageRequired"
    assert "watermark.image" in rejection.message
    assert "watermark.enabled: false" in rejection.message
    assert "default watermark" in rejection.message


@pytest.mark.parametrize("field", ["referenceImage", "referenceVideo", "motionSequence", "audio",
                                   "watermark.image"])
def test_https_host_not_on_the_allow_list(field: str) -> None:
    """Every https input is checked against the allow-list, naming the field and host."""
    url = "https://evil.example.org/x.bin"
    spec: dict[str, Any] = ({"watermark": {"image": url}} if field == "watermark.image"
                            else {field: url})
    rejection = _check(make_settings(allowed_https_hosts=["cdn.example.com"]), **spec)
    assert rejection == Rejection(
        "HostNotAllowed",
        f"{field} {url}: host evil.example.org is not on the operator's https allow-list "
        "(allowed: cdn.example.com)")


def test_https_userinfo_does_not_fool_the_allow_list() -> None:
    """`https://allowed@other/` fetches from `other`: admission refuses user info at all."""
    with pytest.raises(ValidationError, match="no user info") as caught:
        _check(make_settings(allowed_https_hosts=["cdn.example.com"]),
               audio="https://cdn.example.com@evil.example.org/a.mp3")
    assert caught.value.errors()[0]["loc"] == ("audio",)


def test_empty_allow_list_is_named_as_such() -> None:
    rejection = _check(make_settings(allowed_https_hosts=[]),
                       referenceVideo="https://cdn.example.com/a.mp4")
    assert rejection is not None and rejection.reason == "HostNotAllowed"
    assert rejection.message.endswith("(allowed: none)")


@pytest.mark.parametrize(("field", "path"), [
    ("referenceImage", "/inputs/ref.png"),
    ("referenceVideo", "/inputs/dance.mp4"),
    ("motionSequence", "/inputs/poses.json"),
    ("audio", "/inputs/song.mp3"),
    ("watermark.image", "/inputs/logo.png"),
    ("output", "/outputs/a.mp4"),
])
def test_plain_path_without_a_data_volume(field: str, path: str) -> None:
    """A data-volume path is refused when the operator mounts no data volume, naming the field."""
    spec: dict[str, Any] = ({"watermark": {"image": path}} if field == "watermark.image"
                            else {field: path})
    rejection = _check(make_settings(data_pvc=None), **spec)
    assert rejection == Rejection(
        "DataVolumeNotConfigured",
        f"{field} {path} is a path on the shared data volume, but the operator has no data "
        "volume configured (chart value runner.data.pvc): use s3:// locations")
