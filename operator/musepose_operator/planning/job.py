"""Plan the batch/v1 Job for one generation of an Animation. Pure: no I/O.

The Job name is deterministic per (Animation uid, generation), so a restarted operator
finds the Job it made instead of making another.
"""

from __future__ import annotations

import hashlib
from typing import Any

from musepose_operator import labels as L
from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.settings import Settings
from musepose_operator.tenancy import credentials_secret, namespace_scope, within
from musepose_runner import contract
from musepose_runner.contract import (
    NON_RETRIABLE_EXIT_CODES,
    AnimationRef,
    CheckpointSettings,
    InferenceSettings,
    JobSpec,
    WatermarkJob,
)
from musepose_runner.location_rules import LOWER_VRAM_SIZE as LOWER_VRAM_SIZE

CONTAINER_NAME = "runner"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
SCRATCH_MOUNT = "/scratch"
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _fit(text: str, suffix: str) -> str:
    """``text`` cut so that ``text + suffix`` has at most 63 characters (a label's limit)."""
    return text[: 63 - len(suffix)].rstrip("-.") + suffix


def job_name(name: str, uid: str, generation: int, *, memory_fallback: bool = False) -> str:
    """``<name>-g<generation>-<hash>`` (``-lv`` after it for the lower-VRAM retry), at most
    63 characters (a valid label value too)."""
    digest = hashlib.sha256(f"{uid}/{generation}".encode()).hexdigest()[:6]
    return _fit(name, f"-g{generation}-{digest}{'-lv' if memory_fallback else ''}")


def label_value(value: str) -> str:
    """``value`` as a label value (at most 63 characters): a longer one is cut and given a
    hash suffix, so an Animation name up to 253 characters still yields a creatable Job."""
    if len(value) <= 63:
        return value
    return _fit(value, "-" + hashlib.sha256(value.encode()).hexdigest()[:8])


def default_output(settings: Settings, namespace: str, name: str) -> str:
    return f"s3://{settings.s3.default_bucket}/{namespace}/{name}.mp4"


def output_location(settings: Settings, namespace: str, name: str, output: str | None) -> str:
    """Where the video goes: the spec's ``output``, else the operator's default."""
    return output or default_output(settings, namespace, name)


def resume_checkpoint_location(output: str, uid: str) -> str:
    """Where a run saves its resume checkpoint (denoising state, not model weights):
    beside the output, inside whatever storage scope lets the run write its output."""
    directory = output.rsplit("/", 1)[0]
    return f"{directory}/.musepose-checkpoints/{uid}.safetensors"


def _checkpoint(settings: Settings, output: str, namespace: str, name: str, uid: str
                ) -> CheckpointSettings | None:
    policy = settings.checkpoints
    if not policy.enabled or not uid:
        return None
    location = resume_checkpoint_location(output, uid)
    scope = namespace_scope(settings, namespace)
    if scope is not None and not within(location, scope.write):
        return None  # an output named exactly, not a prefix: nowhere to save beside it
    if not contract.is_output_location(location):
        return None
    return CheckpointSettings(location=location, every_steps=policy.every_steps,
                              min_interval_seconds=policy.min_interval_seconds)


def plan_runner_document(
    spec: AnimationSpec, settings: Settings, *, namespace: str, name: str, uid: str,
    generation: int, memory_fallback: bool = False,
) -> JobSpec:
    """The runner's input document (its job contract, not the Kubernetes Job: that is
    ``plan_job``), every default resolved. ``memory_fallback``: the retry of a run that
    ran out of GPU memory, in lower-VRAM mode."""
    inference: InferenceSettings = settings.inference
    lower_vram = spec.lower_vram or memory_fallback
    if lower_vram:
        inference = inference.model_copy(update={"width": LOWER_VRAM_SIZE,
                                                  "height": LOWER_VRAM_SIZE})
    output = output_location(settings, namespace, name, spec.output)
    watermark = WatermarkJob(
        enabled=spec.watermark.enabled,
        image=spec.watermark.image or settings.default_watermark,
        width=spec.watermark.width,
        offset=spec.watermark.offset,
    ) if spec.watermark.enabled else WatermarkJob(enabled=False)
    return JobSpec(
        animation=AnimationRef(namespace=namespace, name=name, uid=uid, generation=generation),
        reference_image=spec.reference_image,
        reference_video=spec.reference_video,
        motion_sequence=spec.motion_sequence,
        audio=spec.audio,
        output=output,
        seed=spec.seed,
        image_clip_duration=spec.image_clip_duration,
        lower_vram=lower_vram,
        remove_background=spec.remove_background,
        watermark=watermark,
        inference=inference,
        limits=settings.limits,
        allowed_https_hosts=tuple(settings.allowed_https_hosts),
        scope=namespace_scope(settings, namespace),
        overwrite=spec.overwrite,
        checkpoint=_checkpoint(settings, output, namespace, name, uid),
    )


def plan_job(
    animation: dict[str, Any], spec: AnimationSpec, settings: Settings, *,
    memory_fallback: bool = False,
) -> dict[str, Any]:
    """The whole Job manifest for the Animation's current generation; with
    ``memory_fallback``, the lower-VRAM retry of a run that ran out of GPU memory (its own
    Job name, so the failed Job stays to be read)."""
    meta = animation["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = int(meta.get("generation") or 1)
    document = plan_runner_document(spec, settings, namespace=namespace, name=name, uid=uid,
                             generation=generation, memory_fallback=memory_fallback)
    queue = spec.queue_name or settings.default_queue_name
    labels = {
        L.LABEL_NAME: "musepose-runner",
        L.LABEL_INSTANCE: label_value(name),
        L.LABEL_COMPONENT: "runner",
        L.LABEL_MANAGED_BY: L.MANAGED_BY,
        L.LABEL_PART_OF: "musepose",
        L.LABEL_ANIMATION: label_value(name),
        L.LABEL_ANIMATION_UID: uid,
        L.LABEL_GENERATION: str(generation),
    }
    job_labels = dict(labels)
    if queue:
        job_labels[L.KUEUE_QUEUE_LABEL] = queue
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.retries if spec.retries is not None else settings.backoff_limit,
        "activeDeadlineSeconds": spec.timeout_seconds or settings.active_deadline_seconds,
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {
                "containerName": CONTAINER_NAME, "operator": "In",
                "values": sorted(int(code) for code in NON_RETRIABLE_EXIT_CODES)}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]},
        # Kueue admits suspended Jobs; a user's suspend holds the Job the same way.
        "suspend": bool(queue) or spec.suspend,
        "template": {
            "metadata": {"labels": labels},
            "spec": _pod_spec(document, settings),
        },
    }
    if settings.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, uid, generation, memory_fallback=memory_fallback),
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": job_spec,
    }


def _pod_spec(document: JobSpec, settings: Settings) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch_size_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": SCRATCH_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if settings.weights_pvc:
        volumes.append({"name": "weights", "persistentVolumeClaim": {
            "claimName": settings.weights_pvc, "readOnly": True}})
        mounts.append({"name": "weights", "mountPath": settings.weights_mount_path,
                       "readOnly": True})
    if settings.data_pvc:
        volumes.append({"name": "data", "persistentVolumeClaim": {
            "claimName": settings.data_pvc}})
        mounts.append({"name": "data", "mountPath": settings.data_mount_path})

    resources: dict[str, Any] = {
        "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
        "limits": {"memory": settings.memory_limit},
    }
    if settings.gpu_count:
        resources["limits"][settings.gpu_resource_name] = str(settings.gpu_count)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.runner_command),
        "env": _env(document, settings),
        "resources": resources,
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": bool(settings.runner_service_account),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(settings.node_selector),
        "tolerations": [dict(t) for t in settings.tolerations],
    }
    if settings.runner_service_account:
        pod["serviceAccountName"] = settings.runner_service_account
    if settings.priority_class_name:
        pod["priorityClassName"] = settings.priority_class_name
    if settings.runtime_class_name:
        pod["runtimeClassName"] = settings.runtime_class_name
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    return pod


def _env(document: JobSpec, settings: Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": contract.ENV_JOB_SPEC, "value": document.to_json()},
        {"name": contract.ENV_WEIGHTS, "value": settings.weights_mount_path},
        {"name": contract.ENV_DATA_ROOT, "value": settings.data_mount_path},
        {"name": contract.ENV_SCRATCH, "value": SCRATCH_MOUNT},
        {"name": contract.ENV_RESULT_PATH, "value": TERMINATION_MESSAGE_PATH},
        {"name": contract.ENV_SERVICEACCOUNT_DIR, "value": SERVICEACCOUNT_DIR},
        {"name": contract.ENV_POD_NAME,
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": contract.ENV_POD_NAMESPACE,
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HOME", "value": "/tmp"},
    ]
    s3 = settings.s3
    if s3.endpoint:
        env.append({"name": contract.ENV_S3_ENDPOINT, "value": s3.endpoint})
    env.append({"name": contract.ENV_S3_SECURE, "value": "true" if s3.secure else "false"})
    if s3.region:
        env.append({"name": contract.ENV_S3_REGION, "value": s3.region})
    secret = credentials_secret(settings, document.animation.namespace)
    if secret:
        for var, key in ((contract.ENV_S3_ACCESS_KEY, s3.access_key_key),
                         (contract.ENV_S3_SECRET_KEY, s3.secret_key_key)):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {
                "name": secret, "key": key}}})
    return env
