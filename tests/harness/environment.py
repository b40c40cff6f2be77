"""One object for the whole local environment: control plane, MinIO and the test kubelet."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes import client, config

from tests.harness.binaries import cache_dir
from tests.harness.cluster import ControlPlane, start_control_plane
from tests.harness.kubelet import NodeSpec, TestKubelet
from tests.harness.minio import MinioServer, start_minio

if TYPE_CHECKING:
    from tests.harness.realnode import RealNode

GPU_NODES = [NodeSpec("gpu-node-0", gpus=2), NodeSpec("gpu-node-1", gpus=2)]


def use_existing_cluster() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() in ("1", "true", "yes")


@dataclass
class Environment:
    kubeconfig: Path
    control_plane: ControlPlane | None = None
    minio: MinioServer | None = None
    kubelet: TestKubelet | None = None
    node: RealNode | None = None
    claim_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def audit_log(self) -> Path:
        """The API server's audit log of writes (tests.harness.audit reads it). The local
        control plane writes one; on an existing cluster, MUSEPOSE_AUDIT_LOG names it."""
        if self.control_plane is not None:
            return self.control_plane.audit_log
        return Path(os.environ.get("MUSEPOSE_AUDIT_LOG", "/nonexistent/audit.log"))

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def start_kubelet(self, nodes: list[NodeSpec] | None = None, mode: str = "execute",
                      extra_env: dict[str, str] | None = None) -> TestKubelet:
        assert self.control_plane is not None, "the test kubelet needs the local control plane"
        # Pods run this project's commands (musepose-runner): the virtualenv's bin comes first.
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        extra_env = {"PATH": path, **(extra_env or {})}
        self.kubelet = TestKubelet(
            self.api_client(), nodes or GPU_NODES, mode=mode,
            api_port=self.control_plane.api_port, ca_file=self.control_plane.pki.ca_cert,
            claim_dirs=self.claim_dirs, extra_env=extra_env,
        ).start()
        return self.kubelet

    def start_real_node(self) -> RealNode:
        """containerd + a kubelet on this machine (tests.harness.realnode); pods reach MinIO
        at realnode.NODE_IP:realnode.MINIO_PORT."""
        assert self.control_plane is not None, "the real node joins the local control plane"
        from tests.harness import realnode

        plane = self.control_plane
        self.node = realnode.RealNode(
            workdir=cache_dir() / "realnode" / "run", bins=realnode.node_bin_dir(),
            store=cache_dir() / "realnode" / "containerd", api_port=plane.api_port,
            pki=plane.pki, admin_kubeconfig=plane.kubeconfig,
            minio_endpoint=self.minio.endpoint if self.minio else None).start()
        return self.node

    def stop(self) -> None:
        if self.kubelet:
            self.kubelet.stop()
        node, self.node = self.node, None
        try:
            if node:
                node.stop()  # raises HostChanged if the host is not as it was
        finally:
            if self.minio:
                self.minio.stop()
            if self.control_plane:
                self.control_plane.stop()


def start_environment(workdir: Path | None = None, *, with_minio: bool = True) -> Environment:
    if use_existing_cluster():
        kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        return Environment(kubeconfig)
    plane = start_control_plane(workdir / "cluster" if workdir else None, audit_writes=True)
    env = Environment(plane.kubeconfig, control_plane=plane)
    try:
        if with_minio:
            env.minio = start_minio(workdir / "minio" if workdir else None)
    except BaseException:
        env.stop()
        raise
    return env
