"""Fixtures of the fault suite: a namespace ready for runner pods, fake GPU nodes of its
own (enough slots for a batch of Animations at once), and the operator as a process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.environment import Environment
from tests.harness.kubelet import DURATION_ANNOTATION, NodeSpec, TestKubelet
from tests.integration.conftest import animation_crd  # noqa: F401 - a fixture
from tests.operator_env import DATA_CLAIM, WEIGHTS_CLAIM, prepare_namespace

pytestmark = pytest.mark.cluster

FAULT_NODE_LABEL = "musepose.io/fault-kubelet"
# MUSEPOSE_FAULTS_FULL=1 runs the full figures (20 kills of 20 Animations, 1,000
# Animations at restart); the default is scaled down to keep `make test` within minutes.
FULL = os.environ.get("MUSEPOSE_FAULTS_FULL", "") == "1"


def scale(default: int, full: int) -> int:
    return full if FULL else default


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """One line of figures per scenario, shown even when pytest captures output."""
    with capsys.disabled():
        print(f"\n[faults] {line}")


class EndlessSimulation(TestKubelet):
    """Simulated pods that keep running until deleted (the default simulation is 1 s)."""

    def _simulate(self, pod: Any, annotations: dict[str, str]) -> tuple[int, str]:
        return super()._simulate(pod, {DURATION_ANNOTATION: "86400", **annotations})


def fault_kubelet(cluster: Environment, mode: str, prefix: str, nodes: int = 2,
                  kind: type[TestKubelet] = TestKubelet) -> TestKubelet:
    specs = [NodeSpec(f"{prefix}-{i}", gpus=110, labels={FAULT_NODE_LABEL: prefix})
             for i in range(nodes)]
    assert cluster.control_plane is not None, "the fault suite needs the local control plane"
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return kind(cluster.api_client(), specs, mode=mode,
                api_port=cluster.control_plane.api_port,
                ca_file=cluster.control_plane.pki.ca_cert,
                claim_dirs=cluster.claim_dirs, extra_env={"PATH": path}).start()


@pytest.fixture(scope="module")
def executing_nodes(cluster: Environment) -> Iterator[dict[str, str]]:
    """Nodes that run the fake runner for real; the node selector that picks them."""
    kubelet = fault_kubelet(cluster, "execute", "fault-exec")
    yield {FAULT_NODE_LABEL: "fault-exec"}
    kubelet.stop()


@pytest.fixture(scope="module")
def simulating_nodes(cluster: Environment) -> Iterator[dict[str, str]]:
    """Nodes that only pretend to run pods, until the pods are deleted, for scale (110
    pods fit on a node, as on a default kubelet)."""
    kubelet = fault_kubelet(cluster, "simulate", "fault-sim", nodes=scale(2, 10),
                            kind=EndlessSimulation)
    yield {FAULT_NODE_LABEL: "fault-sim"}
    kubelet.stop()


@pytest.fixture
def fault_namespace(kube_api: client.ApiClient, namespace: str, minio: Any,
                    cluster: Environment, animation_crd: Any,  # noqa: F811
                    tmp_path: Path) -> str:
    prepare_namespace(kube_api, namespace, access_key=minio.access_key,
                      secret_key=minio.secret_key)
    data = tmp_path / "data"
    data.mkdir()
    cluster.claim_dirs[WEIGHTS_CLAIM] = tmp_path / "weights"
    cluster.claim_dirs[DATA_CLAIM] = data
    return namespace
