"""kube-apiserver restarted while a batch of Animations runs: the operator's watches
reconnect and resume; nothing is duplicated, lost, or shown going back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.faults.conftest import report, scale
from tests.faults.scenario import (
    Figures,
    batch,
    create_batch,
    phases,
    wait_finished,
    watched_operator,
)
from tests.harness.environment import Environment
from tests.harness.processes import eventually

pytestmark = pytest.mark.cluster


def test_apiserver_restart_during_runs(kube_api: client.ApiClient, cluster: Environment,
                                       fault_namespace: str, executing_nodes: dict[str, str],
                                       minio: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    if cluster.control_plane is None:
        pytest.skip("restarting the API server needs the local control plane")
    ns = fault_namespace
    seeds = batch(scale(8, 20))
    with watched_operator(kube_api, cluster, ns, minio, executing_nodes,
                          tmp_path / "operator.log") as (operator, recorder):
        create_batch(kube_api, ns, seeds)
        eventually("runs under way", lambda: list(
            phases(kube_api, ns, list(seeds)).values()).count("Running") >= 3, timeout=90)
        cluster.control_plane.restart("kube-apiserver", down_seconds=5)
        finished = wait_finished(kube_api, ns, list(seeds), timeout=240)

    figures = Figures.of(kube_api, ns, recorder, seeds, apiserver_restarts=1)
    report(capsys, figures.line("apiserver-restart"))
    assert finished, operator.output()
    figures.assert_clean(operator.output())
