"""The model files on the local cluster (real control plane, test kubelet, real MinIO):

* the chart's ``weights.pull`` Job fills the weights volume from a MinIO mirror of the demo
  weights; an Animation applied before it finished waits in Pending as
  ``WaitingForWeights`` (one Event saying what to do), then runs the real runner on the
  pulled files and succeeds;
* with ``runner.weights.image`` the chart renders, and the v1.35 API server accepts (and
  keeps), a runner pod that mounts the weights as an image volume. The test kubelet cannot
  mount images (there is no container runtime here): that pod is checked by the API
  server with a server-side dry run, not run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from musepose_operator.api import AnimationSpec
from musepose_operator.planning import plan_job
from musepose_operator.reconcile.weights_gate import WAITING_REASON
from musepose_operator.settings import Settings
from musepose_runner.weights.lock import LOCK_NAME, read
from tests.chart_render import CHART, render, settings_of
from tests.harness.binaries import binary
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.integration.test_weights_pull import upload_tree
from tests.operator_env import (
    REAL_RUNNER,
    animation,
    condition,
    create_animation,
    create_claim,
    events_of,
    get_animation,
    operator_settings,
    prepare_namespace,
    running_operator,
)

pytestmark = pytest.mark.cluster
PULLED_CLAIM = "pulled-weights"
RUNNER_CLI = str(Path(sys.executable).parent / "musepose-runner")


@contextmanager
def helm_release(cluster: Environment, namespace: str, values: dict[str, Any]
                 ) -> Iterator[str]:
    release = f"w-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "values.yaml"
        path.write_text(yaml.safe_dump({"fullnameOverride": release, "replicaCount": 0,
                                        **values}))
        done = subprocess.run([binary("helm"), "--kubeconfig", str(cluster.kubeconfig),
                               "install", release, str(CHART), "--namespace", namespace,
                               "--values", str(path), "--timeout", "2m"],
                              capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        yield release
    finally:
        subprocess.run([binary("helm"), "--kubeconfig", str(cluster.kubeconfig), "uninstall",
                        release, "--namespace", namespace, "--timeout", "2m"],
                       capture_output=True, text=True)


@pytest.mark.slow  # the real runner makes a video with the tiny model on CPU
def test_animation_waits_for_the_weights_pull_then_runs_on_the_pulled_files(
        cluster: Environment, kube_api: client.ApiClient, namespace: str, minio: Any,
        kubelet: Any, animation_crd: Any, demo_weights: Path, media: Any,
        tmp_path: Path) -> None:
    ns = namespace
    core: Any = client.CoreV1Api(kube_api)
    prepare_namespace(kube_api, ns, access_key=minio.access_key, secret_key=minio.secret_key)
    create_claim(core, ns, PULLED_CLAIM)
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    cluster.claim_dirs[PULLED_CLAIM] = pulled
    bucket = f"mirror-{uuid.uuid4().hex[:8]}"
    upload_tree(minio, demo_weights, bucket, "musepose/")
    store = minio.client()
    for name in ("videos", "inputs"):
        if not store.bucket_exists(name):
            store.make_bucket(name)
    store.fput_object("inputs", f"{ns}/ref.png", str(media.reference_image))
    store.fput_object("inputs", f"{ns}/song.wav", str(media.song))

    values = {
        # The operator runs as the test's admin, not the chart's ServiceAccount: the gang
        # policy (tested in test_tenancy.py) would refuse its Jobs.
        "runner": {"namespaces": [ns], "serviceAccount": {"create": False},
                   "weights": {"pvc": PULLED_CLAIM}, "gangPods": {"restrict": False}},
        "s3": {"endpoint": minio.endpoint, "secure": False},  # Secret: prepare_namespace's
        "networkPolicy": {"enabled": False},
        "weights": {"pull": {"enabled": True, "from": f"s3://{bucket}/musepose",
                             "command": [RUNNER_CLI], "limitRate": "2M",
                             "tolerations": [{"operator": "Exists"}]}},
    }
    try:
        with helm_release(cluster, ns, values) as release:
            job_name = f"{release}-weights-pull-1"
            settings = operator_settings(minio.endpoint, runner=REAL_RUNNER,
                                         WEIGHTS_PVC=PULLED_CLAIM, WEIGHTS_PULL_JOB=job_name,
                                         S3_ACCESS_KEY=minio.access_key,
                                         S3_SECRET_KEY=minio.secret_key,
                                         NODE_SELECTOR={"musepose.io/test-kubelet": "true"})
            with running_operator(cluster.kubeconfig, ns, settings, tmp_path) as operator:
                create_animation(kube_api, ns, animation(
                    "early", referenceImage=f"s3://inputs/{ns}/ref.png",
                    audio=f"s3://inputs/{ns}/song.wav", imageClipDuration=1, seed=4))

                def waiting() -> dict[str, Any] | None:
                    status = get_animation(kube_api, ns, "early").get("status") or {}
                    return status if status.get("reason") == WAITING_REASON else None

                status = eventually("Animation waiting for the weights", waiting, 60)
                assert status["phase"] == "Pending", status
                assert job_name in status["message"]
                batch: Any = client.BatchV1Api(kube_api)
                job = batch.read_namespaced_job(job_name, ns)
                assert not any(c.type == "Complete" for c in job.status.conditions or [])
                assert client.BatchV1Api(kube_api).list_namespaced_job(
                    ns, label_selector="musepose.io/animation=early").items == []

                def finished() -> dict[str, Any] | None:
                    obj = get_animation(kube_api, ns, "early")
                    found = condition(obj, "Finished")
                    return obj if found and found["status"] == "True" else None

                obj = eventually("Animation finished after the pull", finished, 300)
                assert obj["status"]["phase"] == "Succeeded", (obj["status"],
                                                               operator.output())
            waits = [e for e in events_of(kube_api, ns, "early") if e.reason == WAITING_REASON]
            assert len(waits) == 1 and "weights" in waits[0].message
            assert "kubectl" in waits[0].message
            job = client.BatchV1Api(kube_api).read_namespaced_job(job_name, ns)
            assert any(c.type == "Complete" and c.status == "True"
                       for c in job.status.conditions)
    finally:
        cluster.claim_dirs.pop(PULLED_CLAIM, None)
    # The runner read the pulled files: the volume holds the mirror's set and its lock.
    lock = read(pulled / LOCK_NAME)
    assert len(lock) == 13 and all(e.source.startswith(f"s3://{bucket}/musepose/")
                                   for e in lock.values())


def test_image_volume_runner_pod_is_rendered_and_accepted_by_the_api_server(
        kube_api: client.ApiClient, namespace: str) -> None:
    """Rendered by the chart (runner.weights.image), planned by the operator, admitted by
    the v1.35 API server in a namespace enforcing Pod Security "restricted", with the
    image volume kept (a server whose ImageVolume feature were off would drop the field).
    Dry run only: the test kubelet has no container runtime and cannot mount images."""
    reference = "registry.example/musepose-weights:v1"
    docs = render({"runner": {"weights": {"image": {"reference": reference}}}},
                  namespace=namespace)
    settings = Settings.model_validate(settings_of(docs))
    body = {"metadata": {"name": "image-volume", "namespace": namespace,
                         "uid": str(uuid.uuid4()), "generation": 1},
            "spec": {"referenceImage": "s3://inputs/a.png",
                     "referenceVideo": "s3://inputs/v.mp4", "watermark": {"enabled": False}}}
    job = plan_job(body, AnimationSpec.model_validate(body["spec"]), settings)
    job["metadata"].pop("ownerReferences", None)  # no such Animation object exists
    batch: Any = client.BatchV1Api(kube_api)
    core: Any = client.CoreV1Api(kube_api)
    created = batch.create_namespaced_job(namespace, job, dry_run="All")
    volumes = {v.name: v for v in created.spec.template.spec.volumes}
    assert volumes["weights"].image.reference == reference
    assert volumes["weights"].persistent_volume_claim is None
    core.create_namespaced_service_account(namespace, {"metadata": {
        "name": settings.runner_service_account}})
    pod = {"metadata": {"name": "image-volume"}, "spec": job["spec"]["template"]["spec"]}
    accepted = core.create_namespaced_pod(namespace, pod, dry_run="All")
    (mount,) = [m for m in accepted.spec.containers[0].volume_mounts if m.name == "weights"]
    assert mount.read_only is True
    assert {v.name: v for v in accepted.spec.volumes}["weights"].image.reference == reference
