"""Two operator replicas under kopf peering: one works, the other stands by; the active one
is SIGKILLed mid-run and the standby takes over. Same invariants as a single operator, and
the takeover time is measured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from musepose_operator.main import PEERING_NAME
from tests.faults.conftest import report, scale
from tests.faults.recorder import Recorder
from tests.faults.scenario import Figures, batch, create_batch, phases, wait_finished
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import (
    FAKE_RUNNER,
    ROOT,
    OperatorProcess,
    operator_process,
    operator_settings,
)

pytestmark = pytest.mark.cluster
PEERING_CRD = ROOT / "charts" / "musepose-operator" / "crds" / "kopf.dev_kopfpeerings.yaml"


def install_peering(api: client.ApiClient, namespace: str) -> None:
    """kopf's peering CRD (from the chart) and the peering object the replicas meet in."""
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(yaml.safe_load(PEERING_CRD.read_text()))
    except client.ApiException as err:
        if err.status != 409:
            raise
    eventually("the peering CRD established", lambda: any(
        c.type == "Established" and c.status == "True" for c in
        ext.read_custom_resource_definition("kopfpeerings.kopf.dev").status.conditions or []))
    custom = client.CustomObjectsApi(api)
    eventually("the peering object", lambda: custom.create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
         "metadata": {"name": PEERING_NAME}}))


def replica(cluster: Environment, namespace: str, settings: dict[str, str], priority: int,
            log: Path) -> OperatorProcess:
    operator = operator_process(cluster.kubeconfig, [namespace], settings, log)
    operator.argv.remove("--standalone")
    operator.env["MUSEPOSE_PEERING_PRIORITY"] = str(priority)
    return operator


def test_standby_takes_over_from_a_killed_replica(
        kube_api: client.ApiClient, cluster: Environment, fault_namespace: str,
        executing_nodes: dict[str, str], minio: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    install_peering(kube_api, ns)
    seeds = batch(scale(8, 20))
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                                 NODE_SELECTOR=executing_nodes)
    active = replica(cluster, ns, settings, 20, tmp_path / "active.log")
    standby = replica(cluster, ns, settings, 10, tmp_path / "standby.log")
    recorder = Recorder(kube_api, ns).start()
    active.start()
    standby.start()
    try:
        eventually("the standby standing by",
                   lambda: "standing by" in standby.log.read_text(), timeout=60)
        create_batch(kube_api, ns, seeds)
        eventually("runs under way", lambda: list(
            phases(kube_api, ns, list(seeds)).values()).count("Running") >= 3, timeout=90)
        active.kill()
        killed = time.monotonic()
        eventually("the standby taking over", lambda: "taking over from a peer" in
                   standby.log.read_text(), timeout=120)
        takeover = time.monotonic() - killed
        finished = wait_finished(kube_api, ns, list(seeds), timeout=240)
    finally:
        active.stop()
        standby.stop()
        recorder.stop()

    figures = Figures.of(kube_api, ns, recorder, seeds, takeover_seconds=f"{takeover:.1f}")
    report(capsys, figures.line("peering-takeover"))
    assert finished, standby.output()
    figures.assert_clean(standby.output())
