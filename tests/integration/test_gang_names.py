"""A gang's derived names on the real API server (issue 30, items 2 and 3): a dotted
Animation name once made the headless Service's create fail with 422 after its GPUs were
claimed, pinning them for ever; a Service a tenant made first at a run's name was adopted.
Now the dotted name runs, a pre-made Service fails only its own run (NameTaken, GPUs freed),
and another Animation gets the GPUs either way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.environment import Environment
from tests.harness.processes import eventually, free_port
from tests.operator_env import (
    FAKE_RUNNER,
    animation,
    create_animation,
    get_animation,
    jobs_of,
    operator_settings,
    running_operator,
    wait_finished,
)

pytestmark = pytest.mark.cluster


def _settings(minio: Any) -> dict[str, str]:
    # Two GPUs in all: a second gang of 2 runs only once the first one's GPUs are free.
    return operator_settings(minio.endpoint, runner=FAKE_RUNNER, MAX_CONCURRENT=2, PARALLEL={
        "gpus_per_pod": 1, "port": free_port(), "rendezvous_timeout_seconds": 120})


def _gang(name: str) -> dict[str, Any]:
    return animation(name, referenceImage="s3://inputs/a.png", seed=7, parallelism=2)


def test_a_dotted_name_runs_its_gang_and_frees_the_gpus(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    ns = ready_namespace
    with running_operator(cluster.kubeconfig, ns, _settings(minio), tmp_path) as operator:
        create_animation(kube_api, ns, _gang("dance.v2"))
        job = eventually("the Job", lambda: (jobs_of(kube_api, ns, "dance.v2") or [None])[0])
        service = job.spec.template.spec.subdomain
        assert service and "." not in service and service.startswith("dance-v2-g1-")
        client.CoreV1Api(kube_api).read_namespaced_service(service, ns)  # it was made
        status = wait_finished(kube_api, ns, "dance.v2", timeout=120)["status"]
        assert status["phase"] == "Succeeded", (status, operator.output()[-3000:])
        create_animation(kube_api, ns, _gang("next"))
        after = wait_finished(kube_api, ns, "next", timeout=120)["status"]
        assert after["phase"] == "Succeeded", after


def test_a_service_made_first_at_a_runs_name_is_not_adopted(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path,
) -> None:
    ns = ready_namespace
    create_animation(kube_api, ns, _gang("target"))  # no operator yet: nothing made
    uid = get_animation(kube_api, ns, "target")["metadata"]["uid"]
    # The run's name as the docs give it: <name>-g<generation>-<sha256(uid/generation)[:6]>.
    taken = f"target-g1-{hashlib.sha256(f'{uid}/1'.encode()).hexdigest()[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service(ns, {
        "metadata": {"name": taken},
        "spec": {"clusterIP": "None", "selector": {"app": "the-tenants"},
                 "ports": [{"port": 29500}]}})
    with running_operator(cluster.kubeconfig, ns, _settings(minio), tmp_path) as operator:
        status = wait_finished(kube_api, ns, "target", timeout=120)["status"]
        assert status["phase"] == "Failed", (status, operator.output()[-3000:])
        assert status["reason"] == "NameTaken"
        assert f"Service {ns}/{taken}" in status["message"]
        assert not jobs_of(kube_api, ns, "target")  # no Job joined the tenant's Service
        # The tenant's Service is left as it was, and the GPUs went back: the next gang runs.
        assert core.read_namespaced_service(taken, ns).spec.selector == {"app": "the-tenants"}
        create_animation(kube_api, ns, _gang("next"))
        after = wait_finished(kube_api, ns, "next", timeout=120)["status"]
        assert after["phase"] == "Succeeded", after
