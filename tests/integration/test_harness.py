"""The test environment is real: Jobs schedule onto fake GPU nodes, run, fail and get
collected as in a cluster, and MinIO stores objects."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.kubelet import TestKubelet
from tests.harness.processes import eventually

pytestmark = pytest.mark.cluster

RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"}},
}
RESTRICTED_CONTAINER = {
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}


def _job_complete(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str,
                  name: str) -> None:
    try:
        eventually(f"Job {name} Complete",
                   lambda: _job_condition(batch, namespace, name, "Complete"), 60)
    except AssertionError:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        raise AssertionError(f"Job {name} did not complete; pods: "
                             f"{[p.status.to_dict() for p in pods]}") from None


def _job(name: str, command: list[str], *, gpus: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {
            "backoffLimit": 3,
            "template": {"spec": {
                **RESTRICTED_POD,
                "restartPolicy": "Never",
                "containers": [{
                    **RESTRICTED_CONTAINER,
                    "name": "main", "image": "busybox", "command": command,
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }],
            }},
            **spec,
        },
    }


def _job_condition(batch: client.BatchV1Api, namespace: str, name: str, kind: str
                   ) -> client.V1JobCondition | None:
    job = batch.read_namespaced_job_status(name, namespace)
    return next((c for c in job.status.conditions or []
                 if c.type == kind and c.status == "True"), None)


def test_gpu_job_runs_on_a_fake_gpu_node(
    kube_api: client.ApiClient, kubelet: TestKubelet, namespace: str, tmp_path: Path
) -> None:
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    batch.create_namespaced_job(namespace, _job(
        "writes-a-file", ["sh", "-c", f"echo ran on $(hostname) > {marker}"],
    ))
    _job_complete(batch, core, namespace, "writes-a-file")
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=writes-a-file").items
    assert len(pods) == 1
    assert pods[0].spec.node_name in {"gpu-node-0", "gpu-node-1"}
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 0
    assert marker.exists()


def test_env_secret_and_termination_message(
    kube_api: client.ApiClient, kubelet: TestKubelet, namespace: str
) -> None:
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"},
                                              "stringData": {"token": "s3cr3t"}})
    body = _job("says-hello", ["sh", "-c",
                               'echo "$POD/$TOKEN" > /dev/termination-log; ls /scratch'])
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ]
    container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    batch.create_namespaced_job(namespace, body)
    _job_complete(batch, core, namespace, "says-hello")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=says-hello").items[0]
    message = pod.status.container_statuses[0].state.terminated.message
    assert message.strip() == f"{pod.metadata.name}/s3cr3t"


def test_a_pod_waits_for_a_config_map_its_volume_needs(
    kube_api: client.ApiClient, kubelet: TestKubelet, namespace: str
) -> None:
    """As a kubelet retries a mount: kube-root-ca.crt, which every service-account token
    volume projects, appears in a new namespace only a moment after the namespace."""
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    body = _job("late-config", ["sh", "-c", "cat /config/greeting > /dev/termination-log"])
    body["spec"]["template"]["spec"]["volumes"] = [
        {"name": "config", "configMap": {"name": "made-later"}}]
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "config", "mountPath": "/config"}]
    batch.create_namespaced_job(namespace, body)
    eventually("the pod started", lambda: [
        p for p in core.list_namespaced_pod(namespace).items
        if p.status.phase == "Running"], 60)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "made-later"},
                                                  "data": {"greeting": "hello"}})
    _job_complete(batch, core, namespace, "late-config")
    job = batch.read_namespaced_job_status("late-config", namespace)
    assert not job.status.failed  # the pod waited; nothing failed and was retried
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=late-config").items[0]
    assert pod.status.container_statuses[0].state.terminated.message.strip() == "hello"


def test_pod_failure_policy_fails_the_job_at_once(
    kube_api: client.ApiClient, kubelet: TestKubelet, namespace: str
) -> None:
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    batch.create_namespaced_job(namespace, _job(
        "bad-input", ["sh", "-c", "exit 65"],
        podFailurePolicy={"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [65]}},
        ]},
    ))
    failed = eventually("Job Failed", lambda: _job_condition(batch, namespace, "bad-input",
                                                             "Failed"), 60)
    assert failed.reason == "PodFailurePolicy"
    job = batch.read_namespaced_job_status("bad-input", namespace)
    assert job.status.failed == 1
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=bad-input").items
    assert len(pods) == 1


def test_garbage_collector_deletes_owned_jobs(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    body = _job("owned", ["true"], suspend=True)
    body["metadata"]["ownerReferences"] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.metadata.uid, "controller": True, "blockOwnerDeletion": True,
    }]
    batch.create_namespaced_job(namespace, body)
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def job_gone() -> bool:
        try:
            batch.read_namespaced_job("owned", namespace)
        except client.ApiException as err:
            return err.status == 404
        return False

    eventually("the garbage collector to delete the Job", job_gone, 60)


def test_unschedulable_pod_stays_pending_with_the_reason(
    kube_api: client.ApiClient, kubelet: TestKubelet, namespace: str
) -> None:
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    batch.create_namespaced_job(namespace, _job("too-big", ["true"], gpus=16))

    def unschedulable() -> client.V1PodCondition | None:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=too-big").items
        for pod in pods:
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return condition
        return None

    condition = eventually("PodScheduled=False/Unschedulable", unschedulable, 60)
    assert condition.status == "False"
    assert "nvidia.com/gpu" in condition.message
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=too-big").items[0]
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def test_service_account_tokens_authenticate_and_rbac_applies(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})
    token = core.create_namespaced_service_account_token(
        "robot", namespace, {"spec": {"audiences": [], "expirationSeconds": 600}}
    ).status.token
    settings = client.Configuration()
    settings.host = kube_api.configuration.host
    settings.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    settings.api_key = {"authorization": f"Bearer {token}"}
    robot = client.CoreV1Api(client.ApiClient(settings))
    with pytest.raises(client.ApiException) as denied:
        robot.list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:robot" in denied.value.body


def test_minio_round_trip(minio: Any) -> None:
    store = minio.client()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    store.make_bucket(bucket)
    data = b"pose-guided dance" * 100
    store.put_object(bucket, "a/b.bin", io.BytesIO(data), len(data))
    reply = store.get_object(bucket, "a/b.bin")
    try:
        assert reply.read() == data
    finally:
        reply.close()
        reply.release_conn()
