"""Fixtures shared by the integration tests: the Animation CRD installed on the real cluster,
a namespace ready for runner pods, and an operator running the fake runner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_operator.api.crd import crd
from tests.harness.environment import Environment
from tests.harness.kubelet import TestKubelet
from tests.operator_env import (
    DATA_CLAIM,
    FAKE_RUNNER,
    WEIGHTS_CLAIM,
    OperatorProcess,
    operator_settings,
    prepare_namespace,
    running_operator,
)


@pytest.fixture(scope="session")
def animation_crd(kube_api: client.ApiClient) -> Iterator[dict[str, Any]]:
    """Apply the generated CRD (server-side apply) and wait until it is Established."""
    body = crd()
    ext = client.ApiextensionsV1Api(kube_api)
    name = body["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(body)
    except client.ApiException as err:
        if err.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition_status(name).status
        conditions = {c.type: c.status for c in (status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        time.sleep(0.2)
    else:
        raise TimeoutError(f"CRD {name} not Established within 60 s")
    yield body


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ready_namespace(kube_api: client.ApiClient, namespace: str, minio: Any, cluster: Environment,
                    kubelet: TestKubelet, animation_crd: Any, demo_weights: Path,
                    data_dir: Path) -> str:
    prepare_namespace(kube_api, namespace, access_key=minio.access_key,
                      secret_key=minio.secret_key)
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster.claim_dirs[WEIGHTS_CLAIM] = demo_weights
    cluster.claim_dirs[DATA_CLAIM] = data_dir
    store = minio.client()
    for bucket in ("videos", "inputs"):
        if not store.bucket_exists(bucket):
            store.make_bucket(bucket)
    return namespace


@pytest.fixture
def fake_operator(cluster: Environment, ready_namespace: str, minio: Any, tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    extra = getattr(request, "param", {})
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER, **extra)
    with running_operator(cluster.kubeconfig, ready_namespace, settings, tmp_path) as op:
        yield op
