"""The real-node suite's cluster (``make e2e-real``): the local control plane and MinIO, a real
node (tests.harness.realnode: containerd, a kubelet, CoreDNS), the project's images loaded into
it, and the chart installed from them once for the session: the operator runs as the chart's
Deployment, runners as containers of the runner image under Pod Security "restricted".

Stopping the node at the end checks the host is as it was (tests.harness.hostsafety): a
change fails the session."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.demo_inputs import write_demo_inputs
from tests.harness import demo
from tests.harness.binaries import binary
from tests.harness.environment import Environment, start_environment
from tests.harness.minio import MinioServer
from tests.harness.node_images import load_project_images
from tests.harness.realnode import RealNode

RUNNER_NAMESPACE = "e2e"


@dataclass
class RealCluster:
    env: Environment
    node: RealNode
    images: demo.NodeImages
    minio: MinioServer
    weights: Path
    workdir: Path

    @property
    def api(self) -> client.ApiClient:
        return self.env.api_client()

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary("kubectl"), "--kubeconfig", str(self.env.kubeconfig),
                               *args], capture_output=True, text=True, check=check)

    def install(self, **overrides: Any) -> None:
        """``helm upgrade --install`` with the session's values plus ``overrides``
        (top-level keys replaced); waits for the operator Deployment."""
        values = demo.helm_values(self.minio, runner_namespace=RUNNER_NAMESPACE,
                                  watch_namespaces=[RUNNER_NAMESPACE], images=self.images)
        values.update(overrides)
        demo.install_chart(self.env.kubeconfig, values, self.workdir)
        self.kubectl("-n", demo.RELEASE_NAMESPACE, "rollout", "status",
                     "deployment/musepose-operator", "--timeout=180s")


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory, demo_weights: Path) -> Iterator[RealCluster]:
    workdir = tmp_path_factory.mktemp("realnode")
    # The runner (uid 1000) mounts the weights directory through a hostPath PV.
    for path in (demo_weights, *demo_weights.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = start_environment(workdir)
    try:
        node = env.start_real_node()
        images = load_project_images(node, demo_weights, weights_image=True)
        assert env.minio is not None
        cluster = RealCluster(env, node, images, env.minio, demo_weights, workdir)
        core = client.CoreV1Api(cluster.api)
        core.create_namespace({"metadata": {"name": RUNNER_NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}})
        cluster.install()
        demo.bind_weights_claim(cluster.api, RUNNER_NAMESPACE, demo_weights)
        demo.upload_inputs(env.minio, write_demo_inputs(workdir / "inputs"))
        yield cluster
    finally:
        env.stop()  # raises HostChanged, naming what differs, if the host is not as it was
