"""Plan the batch/v1 Job for one generation of an Animation. Pure: no I/O.

The Job name is deterministic per (Animation uid, generation), so a restarted operator
finds the Job it made instead of making another.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from musepose_operator.api import API_VERSION, KIND, AnimationSpec
from musepose_operator.base import labels as L
from musepose_operator.base.tenancy import credentials_secret, namespace_scope, within
from musepose_operator.planning.parallel import (
    INDEXED_JOB_NAME_LIMIT,
    PARALLEL_LABEL,
    Packing,
    packing_of,
    parallel_section,
    service_name,
)
from musepose_operator.planning.pose_preview import preview_placement, preview_resources
from musepose_operator.planning.render import render_settings
from musepose_operator.planning.run_key import (
    run_key_env,
    run_key_mount,
    run_key_volume,
    run_secret_prefix,
)
from musepose_operator.settings import Settings
from musepose_runner.contract import job_spec as contract
from musepose_runner.contract.job_spec import (
    NON_RETRIABLE_EXIT_CODES,
    UNCOUNTED_EXIT_CODES,
    AnimationRef,
    CheckpointSettings,
    ExtrasJob,
    JobSpec,
    WatermarkJob,
)
from musepose_runner.contract.location_rules import LOWER_VRAM_SIZE as LOWER_VRAM_SIZE

CONTAINER_NAME = "runner"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
SCRATCH_MOUNT = "/scratch"
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _fit(text: str, suffix: str) -> str:
    """``text`` cut so that ``text + suffix`` has at most 63 characters (a label's limit)."""
    return text[: 63 - len(suffix)].rstrip("-.") + suffix


def job_name(name: str, uid: str, generation: int, *, memory_fallback: bool = False,
             parallel: bool = False) -> str:
    """``<name>-g<generation>-<hash>`` (``-lv`` after it for the lower-VRAM retry), at most
    63 characters (a valid label value too); 60 for a parallel run's Indexed Job, whose pods
    are named ``<job>-<index>``. A parallel run's name has no dots: it is also its pods'
    hostname and its Service's name (DNS labels; "x.y" made a Service create fail with 422
    after the GPUs were claimed)."""
    digest = hashlib.sha256(f"{uid}/{generation}".encode()).hexdigest()[:6]
    suffix = f"-g{generation}-{digest}{'-lv' if memory_fallback else ''}"
    if parallel:
        name = name.replace(".", "-")
        return _fit(name[: INDEXED_JOB_NAME_LIMIT - len(suffix)], suffix)
    return _fit(name, suffix)


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
    generation: int, memory_fallback: bool = False, job: str | None = None,
) -> JobSpec:
    """The runner's input document (its job contract, not the Kubernetes Job: that is
    ``plan_job``), every default resolved. ``memory_fallback``: the retry of a run that
    ran out of GPU memory, in lower-VRAM mode. ``job``: the Job's name, which a parallel
    run's workers derive their coordinator's address from."""
    packed = packing_of(spec, settings)
    lower_vram = spec.lower_vram or memory_fallback
    inference = render_settings(spec, settings, namespace, lower_vram=lower_vram)
    output = output_location(settings, namespace, name, spec.output)
    watermark = WatermarkJob(
        enabled=spec.watermark.enabled,
        image=spec.watermark.image or settings.default_watermark,
        width=spec.watermark.width,
        offset=spec.watermark.offset,
        position=spec.watermark.position,
    ) if spec.watermark.enabled else WatermarkJob(enabled=False)
    return JobSpec(
        animation=AnimationRef(namespace=namespace, name=name, uid=uid, generation=generation),
        reference_image=spec.reference_image,
        reference_video=spec.reference_video,
        motion_sequence=spec.motion_sequence,
        audio=spec.audio,
        audio_fit=spec.audio_fit,
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
        checkpoint=None if spec.poses_only else _checkpoint(settings, output, namespace,
                                                            name, uid),
        parallel=parallel_section(job or job_name(
            name, uid, generation, memory_fallback=memory_fallback, parallel=packed.parallel),
            packed, settings),
        # The pose preview and the extra outputs.
        poses_only=spec.poses_only,
        extras=ExtrasJob(aligned_poses=spec.extras.aligned_poses, grid=spec.extras.grid),
    )


def runner_labels(name: str, uid: str, generation: int) -> dict[str, str]:
    """The labels of a run's Job, its pods and (parallel runs) its Service."""
    return {
        L.LABEL_NAME: "musepose-runner",
        L.LABEL_INSTANCE: label_value(name),
        L.LABEL_COMPONENT: "runner",
        L.LABEL_MANAGED_BY: L.MANAGED_BY,
        L.LABEL_PART_OF: "musepose",
        L.LABEL_ANIMATION: label_value(name),
        L.LABEL_ANIMATION_UID: uid,
        L.LABEL_GENERATION: str(generation),
    }


def planned_job_name(animation: dict[str, Any], spec: AnimationSpec, settings: Settings, *,
                     memory_fallback: bool = False) -> str:
    meta = animation["metadata"]
    return job_name(meta["name"], meta["uid"], int(meta.get("generation") or 1),
                    memory_fallback=memory_fallback,
                    parallel=packing_of(spec, settings).parallel)


def plan_job(
    animation: dict[str, Any], spec: AnimationSpec, settings: Settings, *,
    memory_fallback: bool = False,
) -> dict[str, Any]:
    """The whole Job manifest for the Animation's current generation (its run key Secret's
    name is known once it is made: ``run_key.bind_run_key`` puts it in); with
    ``memory_fallback``, the lower-VRAM retry of a run that ran out of GPU memory (its own
    Job name, so the failed Job stays to be read). ``spec.parallelism`` > 1: one Indexed
    Job whose pods find each other through ``plan_service``'s headless Service."""
    meta = animation["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = int(meta.get("generation") or 1)
    packed = packing_of(spec, settings)
    job = planned_job_name(animation, spec, settings, memory_fallback=memory_fallback)
    document = plan_runner_document(spec, settings, namespace=namespace, name=name, uid=uid,
                             generation=generation, memory_fallback=memory_fallback,
                             job=job)
    queue = spec.queue_name or settings.default_queue_name
    labels = runner_labels(name, uid, generation)
    job_labels = dict(labels)
    if queue:
        # Kueue admits the Job as one Workload: all of its pods (spec.parallelism) against
        # the quota at once, or none. Partial admission would need the
        # kueue.x-k8s.io/job-min-parallelism annotation, which a parallel run never carries.
        job_labels[L.KUEUE_QUEUE_LABEL] = queue
    retries = spec.retries if spec.retries is not None else settings.backoff_limit
    job_spec: dict[str, Any] = {
        "backoffLimit": retries,
        "activeDeadlineSeconds": spec.timeout_seconds or settings.active_deadline_seconds,
        "podFailurePolicy": {"rules": _failure_rules(packed)},
        # Kueue admits suspended Jobs; a user's suspend holds the Job the same way.
        "suspend": bool(queue) or spec.suspend,
        "template": {
            "metadata": {"labels": labels},
            "spec": _pod_spec(document, settings, packed, job),
        },
    }
    if packed.parallel:
        job_spec.update(_indexed(packed, retries))
        job_spec["template"]["metadata"]["labels"] = {**labels, PARALLEL_LABEL: "true"}
        if packed.pods > 1:
            job_spec["template"]["spec"]["subdomain"] = service_name(job)
    if settings.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job,
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": job_spec,
    }


def _failure_rules(packed: Packing) -> list[dict[str, Any]]:
    """Bad input fails the Job at once (whichever worker finds it); disruptions are not
    counted against retries, nor, with several pods, a worker that only lost its peer (the
    peer's own exit or disruption is what counts)."""
    rules: list[dict[str, Any]] = [
        {"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER_NAME, "operator": "In",
            "values": sorted(int(code) for code in NON_RETRIABLE_EXIT_CODES)}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
    if packed.pods > 1:
        rules.append({"action": "Ignore", "onExitCodes": {
            "containerName": CONTAINER_NAME, "operator": "In",
            "values": sorted(int(code) for code in UNCOUNTED_EXIT_CODES)}})
    return rules


def _indexed(packed: Packing, retries: int) -> dict[str, Any]:
    """One Indexed Job of ``packed.pods`` pods, all running at once (rank base of pod i:
    i x per_pod). An Indexed Job replaces a failed index alone; the runner makes that a
    restart of the whole gang: the other workers lose their peer in the next collective and
    exit too, every index gets a new pod, they meet again and resume from worker 0's
    checkpoint. The peers exit 76, which the failure rules ignore, so a lost worker costs
    the one failure of its own pod; a rendezvous that fails (75 on every pod that came)
    can cost one per pod, so ``backoffLimit`` allows ``retries`` attempts of that kind."""
    return {
        "completionMode": "Indexed",
        "completions": packed.pods,
        "parallelism": packed.pods,
        "backoffLimit": (retries + 1) * packed.pods - 1,
    }


def _pod_spec(document: JobSpec, settings: Settings, packed: Packing, job: str
              ) -> dict[str, Any]:
    volumes, mounts = _volumes(settings, job)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [_container(document, settings, packed, mounts)],
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
    if document.poses_only:  # a CPU pod, placed by settings.posePreview
        pod.update(preview_placement(settings))
    if settings.runner_service_account:
        pod["serviceAccountName"] = settings.runner_service_account
    if settings.priority_class_name:
        pod["priorityClassName"] = settings.priority_class_name
    if settings.runtime_class_name:
        pod["runtimeClassName"] = settings.runtime_class_name
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    return pod


def _volumes(settings: Settings, job: str
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the runner's mounts of them: scratch, /tmp, the run key, the
    weights (read-only) and the data volume."""
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch_size_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        # This run's key, this Job's pods only; the Secret's generated name replaces the
        # prefix once it is made.
        run_key_volume(run_secret_prefix(job)),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": SCRATCH_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
        run_key_mount(),
    ]
    if settings.weights_image:  # an image volume (Kubernetes >= 1.35): always read-only
        volumes.append({"name": "weights", "image": {
            "reference": settings.weights_image,
            "pullPolicy": settings.weights_image_pull_policy}})
    elif settings.weights_pvc:
        volumes.append({"name": "weights", "persistentVolumeClaim": {
            "claimName": settings.weights_pvc, "readOnly": True}})
    if settings.weights_image or settings.weights_pvc:
        mounts.append({"name": "weights", "mountPath": settings.weights_mount_path,
                       "readOnly": True})
    if settings.data_pvc:
        volumes.append({"name": "data", "persistentVolumeClaim": {
            "claimName": settings.data_pvc}})
        mounts.append({"name": "data", "mountPath": settings.data_mount_path})
    return volumes, mounts


def _container(document: JobSpec, settings: Settings, packed: Packing,
               mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The runner container; a pod of several workers asks for that many times as much."""
    per_pod = packed.per_pod
    resources: dict[str, Any] = preview_resources(settings) if document.poses_only else {
        "requests": {"cpu": times(settings.cpu_request, per_pod),
                     "memory": times(settings.memory_request, per_pod)},
        "limits": {"memory": times(settings.memory_limit, per_pod)},
    }
    if settings.gpu_count and not document.poses_only:
        resources["limits"][settings.gpu_resource_name] = str(settings.gpu_count * per_pod)
    return {
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


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


def times(quantity: str, factor: int) -> str:
    """A resource quantity ("4", "500m", "16Gi") ``factor`` times over."""
    if factor == 1:
        return quantity
    found = _QUANTITY.match(quantity.strip())
    if not found:
        raise ValueError(f"resource quantity {quantity!r} cannot be multiplied")
    number, unit = found.groups()
    value = float(number) * factor
    return (str(int(value)) if value.is_integer() else f"{value:g}") + unit


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
        run_key_env(),
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
