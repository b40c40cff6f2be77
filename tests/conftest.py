"""pytest fixtures for the real test environment, started lazily and once per session.

Unit tests request none of these, so they run without any cluster. Integration tests ask
for ``kube_api``/``namespace`` (control plane), ``kubelet`` (fake GPU nodes that run pods)
and ``minio``. ``USE_EXISTING_CLUSTER=true`` runs the same tests against the cluster in
``KUBECONFIG`` (kind, k3d or real); MinIO then comes from ``MINIO_ENDPOINT``,
``MINIO_ACCESS_KEY`` and ``MINIO_SECRET_KEY``.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness.environment import Environment, start_environment, use_existing_cluster
from tests.harness.kubelet import TestKubelet
from tests.harness.minio import MinioServer

# Runner material (demo weights, media files) shared by unit, integration and e2e tests.
pytest_plugins = ["tests.runner_fixtures"]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    env = start_environment(with_minio=False)
    yield env
    env.stop()


@pytest.fixture(scope="session")
def kube_api(cluster: Environment) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture(scope="session")
def kubelet(cluster: Environment) -> Iterator[TestKubelet | None]:
    """Two fake GPU nodes (2 × nvidia.com/gpu each) that execute the pods bound to them."""
    if use_existing_cluster():
        yield None
        return
    kubelet = cluster.start_kubelet()
    yield kubelet
    kubelet.stop()
    cluster.kubelet = None


@pytest.fixture(scope="session")
def minio() -> Iterator[Any]:
    if use_existing_cluster() and os.environ.get("MINIO_ENDPOINT"):
        server = MinioServer(os.environ["MINIO_ENDPOINT"], os.environ["MINIO_ACCESS_KEY"],
                             os.environ["MINIO_SECRET_KEY"], workdir=None,  # type: ignore[arg-type]
                             owns_workdir=False)
        yield server
        return
    from tests.harness.minio import start_minio

    server = start_minio()
    yield server
    server.stop()


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, enforcing the restricted Pod Security level."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "musepose.io/test": re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:63].strip("-_.")
        or "test",
    }}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")
