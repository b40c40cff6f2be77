"""The chart on a real node: the operator as the chart's Deployment and the runner as a
container of the runner image (containerd, runc, restricted Pod Security, a read-only root,
the projected token), against the same control plane and MinIO as the rest of the suite.

What the test kubelet cannot show: that the images start and work as the chart runs them,
that the video a runner container makes is the video ``musepose-runner`` makes outside the
cluster from the same job document, that the weights mount as an image volume, and that the
runner's token is held to its own pod by the API server's admission policy for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_runner.contract import job_spec as contract
from tests.harness import demo
from tests.harness.binaries import binary
from tests.harness.processes import eventually, free_port, start_daemon, wait_for
from tests.operator_env import (
    animation,
    condition,
    create_animation,
    jobs_of,
    wait_finished,
)
from tests.realnode.conftest import RUNNER_NAMESPACE as NS
from tests.realnode.conftest import RealCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EXAMPLE = "first-dance"


def runner_pods(real: RealCluster, name: str) -> list[Any]:
    return list(client.CoreV1Api(real.api).list_namespaced_pod(
        NS, label_selector=f"musepose.io/animation={name}").items)


def job_document(real: RealCluster, name: str) -> dict[str, Any]:
    """The job document the operator gave the runner (its Job's MUSEPOSE_JOB_SPEC)."""
    (job,) = eventually(f"the Job of {name}", lambda: jobs_of(real.api, NS, name), 120)
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env or []}
    return json.loads(env[contract.ENV_JOB_SPEC])  # type: ignore[no-any-return]


def run_outside(real: RealCluster, document: dict[str, Any], workdir: Path) -> str:
    """``musepose-runner run`` on this machine (not in a container) with the same document,
    writing to another key of the namespace's scope; the sha256 of what it wrote."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = document["animation"]["name"]
    output = f"s3://musepose/{NS}/outside/{name}.mp4"
    (workdir / "job.json").write_text(json.dumps({**document, "output": output}))
    env = {**os.environ, contract.ENV_S3_ENDPOINT: real.minio.endpoint,
           contract.ENV_S3_SECURE: "false", contract.ENV_S3_ACCESS_KEY: real.minio.access_key,
           contract.ENV_S3_SECRET_KEY: real.minio.secret_key,
           contract.ENV_RESULT_PATH: str(workdir / "result.json"),
           contract.ENV_SCRATCH: str(workdir / "scratch")}
    done = subprocess.run([sys.executable, "-m", "musepose_runner.cli", "run", "--spec",
                           str(workdir / "job.json"), "--weights", str(real.weights), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return hashlib.sha256(download(real, output, workdir / "out.mp4")).hexdigest()


def download(real: RealCluster, uri: str, target: Path) -> bytes:
    bucket, _, key = uri[len("s3://"):].partition("/")
    real.minio.client().fget_object(bucket, key, str(target))
    return target.read_bytes()


@dataclass(frozen=True)
class ExampleRun:
    animation: dict[str, Any]
    document: dict[str, Any]
    outside_sha256: str
    pods: list[Any]


@pytest.fixture(scope="module")
def example(real: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """The README's example Animation, applied with kubectl, run to the end on the node;
    and the same job document run outside the cluster."""
    real.kubectl("-n", NS, "apply", "-f", str(demo.EXAMPLE))
    document = job_document(real, EXAMPLE)
    obj = wait_finished(real.api, NS, EXAMPLE, timeout=900)
    outside = run_outside(real, document, tmp_path_factory.mktemp("outside"))
    return ExampleRun(obj, document, outside, runner_pods(real, EXAMPLE))


def test_the_example_succeeds_in_a_runner_container_as_outside_the_cluster(
        real: RealCluster, example: ExampleRun, tmp_path: Path) -> None:
    status = example.animation["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(example.animation, "Finished")["status"] == "True"  # type: ignore[index]
    # One runner pod, a containerd container of the runner image, done with exit code 0.
    (pod,) = example.pods
    (container,) = pod.status.container_statuses
    assert container.container_id.startswith("containerd://"), container
    assert container.image.endswith(real.images.runner), container.image
    assert container.state.terminated.exit_code == 0
    # The video in MinIO is the one the status describes, byte for byte the one the runner
    # makes outside the cluster from the same job document.
    video = download(real, status["output"]["uri"], tmp_path / "video.mp4")
    assert status["output"]["sha256"] == hashlib.sha256(video).hexdigest()
    assert status["output"]["sha256"] == example.outside_sha256


def test_the_operator_runs_as_the_charts_deployment_from_its_image(
        real: RealCluster, example: ExampleRun) -> None:
    pods = client.CoreV1Api(real.api).list_namespaced_pod(
        demo.RELEASE_NAMESPACE, label_selector="app.kubernetes.io/component=operator").items
    (pod,) = [p for p in pods if p.metadata.deletion_timestamp is None]
    (owner,) = pod.metadata.owner_references
    assert owner.kind == "ReplicaSet" and owner.name.startswith("musepose-operator-")
    (container,) = pod.status.container_statuses
    assert container.ready and container.container_id.startswith("containerd://")
    assert container.image.endswith(real.images.operator), container.image


def test_a_missing_input_fails_naming_its_field_with_one_runner_pod(
        real: RealCluster) -> None:
    missing = "s3://musepose-demo/inputs/nowhere.png"
    create_animation(real.api, NS, animation(
        "missing-input", referenceImage=missing,
        referenceVideo="s3://musepose-demo/inputs/dance.mp4"))
    obj = wait_finished(real.api, NS, "missing-input", timeout=600)
    status = obj["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InputNotFound"), status
    assert status["message"] == f"referenceImage {missing}: object not found"
    (pod,) = runner_pods(real, "missing-input")
    assert pod.status.container_statuses[0].container_id.startswith("containerd://")


TOKEN_PROBE = r"""
import json, os, ssl, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
tls = ssl.create_default_context(cafile=sa + "/ca.crt")
api = "https://%s:%s/api/v1/namespaces/%s/pods/" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"],
    os.environ["POD_NAMESPACE"])
def patch(pod, metadata):
    request = urllib.request.Request(api + pod, method="PATCH",
        data=json.dumps({"metadata": metadata}).encode(),
        headers={"Authorization": "Bearer " + token,
                 "Content-Type": "application/merge-patch+json"})
    try:
        return urllib.request.urlopen(request, context=tls).status
    except urllib.error.HTTPError as err:
        return err.code
me = os.environ["POD_NAME"]
progress = {"musepose.io/progress": '{"percent": 50}'}
print(json.dumps({
    "own progress": patch(me, {"annotations": progress}),
    "own other annotation": patch(me, {"annotations": {"x": "y"}}),
    "own label": patch(me, {"labels": {"x": "y"}}),
    "another pod's progress": patch("bystander", {"annotations": progress}),
}))
"""


def _restricted_pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                        "command": command, "securityContext": {
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {
                                    "fieldPath": "metadata.name"}}},
                                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {
                                    "fieldPath": "metadata.namespace"}}}]}],
        **spec}}


def test_the_runner_token_patches_its_own_progress_and_nothing_else(
        real: RealCluster) -> None:
    core = client.CoreV1Api(real.api)
    core.create_namespaced_pod(NS, _restricted_pod(
        "bystander", real.images.runner, ["sleep", "600"]))
    core.create_namespaced_pod(NS, _restricted_pod(
        "token-probe", real.images.runner, ["python", "-c", TOKEN_PROBE],
        serviceAccountName="musepose-runner", automountServiceAccountToken=True))
    try:
        eventually("the token probe to finish", lambda: core.read_namespaced_pod(
            "token-probe", NS).status.phase in ("Succeeded", "Failed"), 180)
        logs = real.kubectl("-n", NS, "logs", "token-probe").stdout
        answers = json.loads(logs.strip().splitlines()[-1])
        assert answers == {"own progress": 200, "own other annotation": 403,
                           "own label": 403, "another pod's progress": 403}, logs
        own = core.read_namespaced_pod("token-probe", NS).metadata
        assert own.annotations["musepose.io/progress"] == '{"percent": 50}'
        assert "x" not in (own.labels or {})
        assert "musepose.io/progress" not in (
            core.read_namespaced_pod("bystander", NS).metadata.annotations or {})
    finally:
        for name in ("token-probe", "bystander"):
            core.delete_namespaced_pod(name, NS, grace_period_seconds=0)


def test_the_weights_as_an_image_volume_make_the_same_video(
        real: RealCluster, example: ExampleRun) -> None:
    assert real.images.weights is not None
    values = demo.helm_values(real.minio, runner_namespace=NS, watch_namespaces=[NS],
                              images=real.images)
    try:
        real.install(runner={**values["runner"], "weights": {
            **values["runner"]["weights"],
            "image": {"reference": real.images.weights, "pullPolicy": "Never"}}})
        spec = dict(example.animation["spec"])
        create_animation(real.api, NS, {"apiVersion": example.animation["apiVersion"],
                                        "kind": "Animation",
                                        "metadata": {"name": "from-image"}, "spec": spec})
        (job,) = eventually("the Job of from-image", lambda: jobs_of(real.api, NS, "from-image"),
                            120)
        volumes = {v.name: v for v in job.spec.template.spec.volumes}
        images = [v.image.reference for v in volumes.values() if v.image is not None]
        assert images == [real.images.weights]
        assert not [v for v in volumes.values() if v.persistent_volume_claim is not None]
        obj = wait_finished(real.api, NS, "from-image", timeout=900)
    finally:
        real.install()
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert obj["status"]["output"]["sha256"] == example.outside_sha256


@dataclass(frozen=True)
class GangRun:
    animation: dict[str, Any]
    job_uid: str
    jobs_after: list[Any]
    pods: list[Any]
    operator_before: str
    operator_after: str


def _operator_pod(real: RealCluster) -> Any | None:
    pods = client.CoreV1Api(real.api).list_namespaced_pod(
        demo.RELEASE_NAMESPACE, label_selector="app.kubernetes.io/component=operator").items
    ready = [p for p in pods if p.metadata.deletion_timestamp is None
             and any(s.ready for s in p.status.container_statuses or [])]
    return ready[0] if len(ready) == 1 else None


@pytest.fixture(scope="module")
def gang(real: RealCluster, example: ExampleRun) -> GangRun:
    """The example again with parallelism 2, and the operator's pod deleted once its Job
    exists: the Deployment's replacement carries on."""
    spec = {**example.animation["spec"], "parallelism": 2}
    create_animation(real.api, NS, {"apiVersion": example.animation["apiVersion"],
                                    "kind": "Animation", "metadata": {"name": "gang"},
                                    "spec": spec})
    (job,) = eventually("the Job of gang", lambda: jobs_of(real.api, NS, "gang"), 120)
    before = eventually("the operator pod", lambda: _operator_pod(real), 60).metadata.name
    client.CoreV1Api(real.api).delete_namespaced_pod(before, demo.RELEASE_NAMESPACE)
    after = eventually("a replacement operator pod", lambda: (
        pod.metadata.name if (pod := _operator_pod(real)) and pod.metadata.name != before
        else None), 180)
    obj = wait_finished(real.api, NS, "gang", timeout=900)
    return GangRun(obj, job.metadata.uid, jobs_of(real.api, NS, "gang"),
                   runner_pods(real, "gang"), before, after)


def test_two_workers_meet_by_the_headless_services_dns_name_and_make_the_same_video(
        gang: GangRun, example: ExampleRun) -> None:
    status = gang.animation["status"]
    assert status["phase"] == "Succeeded", status
    (job,) = gang.jobs_after
    assert job.spec.completion_mode == "Indexed" and job.spec.completions == 2
    assert sorted(p.spec.hostname for p in gang.pods) == [f"{job.metadata.name}-{i}"
                                                          for i in range(2)]
    assert all(p.status.container_statuses[0].container_id.startswith("containerd://")
               for p in gang.pods)
    # The workers split the video and met at worker 0's DNS name; the same bytes as one.
    assert status["output"]["sha256"] == example.outside_sha256


def test_the_operator_pod_replaced_mid_run_carries_on_without_a_second_job(
        gang: GangRun) -> None:
    assert gang.operator_after != gang.operator_before
    assert [j.metadata.uid for j in gang.jobs_after] == [gang.job_uid]
    assert gang.animation["status"]["phase"] == "Succeeded"


def _gateway_call(url: str, method: str, path: str, token: str,
                  body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode()
                                     if body is not None else None)
    request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_the_gateway_pod_takes_a_payload_through_its_service_to_a_video(
        real: RealCluster, tmp_path: Path) -> None:
    """The gateway as the chart's Deployment, reached through its Service with kubectl
    port-forward (the API server, the kubelet and the pod's network, for real)."""
    core, rbac = client.CoreV1Api(real.api), client.RbacAuthorizationV1Api(real.api)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "client"}})
    rbac.create_namespaced_role(NS, {"metadata": {"name": "client"}, "rules": [{
        "apiGroups": ["musepose.io"], "resources": ["animations"],
        "verbs": ["create", "get", "list"]}]})
    rbac.create_namespaced_role_binding(NS, {
        "metadata": {"name": "client"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "client"},
        "subjects": [{"kind": "ServiceAccount", "name": "client", "namespace": NS}]})
    token = core.create_namespaced_service_account_token(
        "client", NS, {"spec": {"expirationSeconds": 3600}}).status.token
    real.install(gateway={"enabled": True, "replicas": 1, "namespaces": [NS]})
    real.kubectl("-n", demo.RELEASE_NAMESPACE, "rollout", "status",
                 "deployment/musepose-operator-gateway", "--timeout=180s")
    service = core.read_namespaced_service("musepose-operator-gateway", demo.RELEASE_NAMESPACE)
    port = free_port()
    forward = start_daemon("port-forward", [
        binary("kubectl"), "--kubeconfig", str(real.env.kubeconfig), "-n",
        demo.RELEASE_NAMESPACE, "port-forward", "service/musepose-operator-gateway",
        f"{port}:{service.spec.ports[0].port}"], tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the gateway through port-forward", lambda: urllib.request.urlopen(
            url + "/healthz", timeout=2).status == 200, 60, forward)
        code, created = _gateway_call(url, "POST", f"/animate?namespace={NS}", token, {
            "id": "Gateway 1", "audio_file": "s3://musepose-demo/inputs/song.wav",
            "reference_image": "s3://musepose-demo/inputs/ref.png",
            "reference_video": "s3://musepose-demo/inputs/dance.mp4",
            "output_path": f"s3://musepose/{NS}/gateway-1.mp4", "watermark": False})
        assert code == 202, created

        def finished() -> Any:
            code, reply = _gateway_call(url, "GET", f"/animate/Gateway%201?namespace={NS}",
                                        token)
            assert code == 200, reply
            return reply if reply["phase"] in ("Succeeded", "Failed") else None

        done = eventually("the gateway's request to finish", finished, 900)
    finally:
        forward.stop()
        real.install()
    assert done["phase"] == "Succeeded", done
    assert done["output"]["uri"] == f"s3://musepose/{NS}/gateway-1.mp4"
    video = download(real, done["output"]["uri"], tmp_path / "gateway.mp4")
    assert hashlib.sha256(video).hexdigest() == done["output"]["sha256"]
