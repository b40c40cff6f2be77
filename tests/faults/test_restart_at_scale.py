"""The operator restarted while many Animations are running (pods simulated by the test
kubelet): it resumes without re-creating a Job and without rewriting statuses that are
already right (an operator deciding before its views are filled would say Pending again).

Requests are counted in the API server's audit log (status PATCHes, Job creates), after a
pass over every Animation that finished without an exception and a quiet period with no
write at all; any "reconciling … failed" in the operator's log fails the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.faults.conftest import report, scale
from tests.faults.recorder import Recorder
from tests.faults.scenario import probe
from tests.harness import audit
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import (
    FAKE_RUNNER,
    animation,
    create_animation,
    operator_process,
    operator_settings,
)

pytestmark = pytest.mark.cluster


def statuses(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "musepose.io", "v1alpha1", namespace, "animations")
    return [o.get("status") or {} for o in listing["items"]]


def _difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
            if before.get(k) != after.get(k)}


def test_restart_with_many_animations(kube_api: client.ApiClient, cluster: Environment,
                                      fault_namespace: str, simulating_nodes: dict[str, str],
                                      minio: Any, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    count = scale(100, 1000)
    names = [f"many-{i:04d}" for i in range(count)]
    # Small requests: a test node has 32 CPUs and 128 GiB; 110 pods fit on it.
    settings = operator_settings(minio.endpoint, runner=FAKE_RUNNER,
                                 NODE_SELECTOR=simulating_nodes, CPU_REQUEST="100m",
                                 MEMORY_REQUEST="64Mi")
    operator = operator_process(cluster.kubeconfig, [ns], settings, tmp_path / "operator.log")
    operator.start()
    recorder = Recorder(kube_api, ns)
    try:
        for name in names:
            create_animation(kube_api, ns, animation(name, referenceImage="s3://inputs/a.png"))
        eventually("every Animation running, its start time noted", lambda: all(
            s.get("phase") == "Running" and s.get("startTime")
            for s in statuses(kube_api, ns)) and len(statuses(kube_api, ns)) == count,
            timeout=600)
        recorder.start()
        eventually("the recorder's first listings", lambda: len(recorder.sightings) == count
                   and len(recorder.jobs) == count)
        jobs_before = {n: set(j) for n, j in recorder.jobs.items()}
        log = cluster.audit_log
        start = audit.offset(log)
        operator.restart()
        # Its probe counts the Animations with a pass since it started that finished
        # without an exception.
        eventually("a finished pass over every Animation after the restart", lambda: probe(
            operator).get("reconciled") == count, timeout=300)
        # Then nothing more: no audited write in the namespace, no status change seen.
        audit.quiet("writes after the restart", lambda: (
            audit.writes(log, start, ns), recorder.count_writes()), quiet_for=5, timeout=120)
        writes = recorder.count_writes()
        patches = sum(audit.count(log, start, ns, verb, "animations/status")
                      for verb in ("patch", "update"))
        creates = audit.count(log, start, ns, "create", "jobs")
        failed = operator.failed_passes()
    finally:
        operator.stop()
        recorder.stop()

    recreated = sum(1 for n, j in recorder.jobs.items() if j != jobs_before.get(n))
    report(capsys, f"restart-at-scale: animations={count} jobs={sum(map(len, jobs_before.values()))} "
                   f"recreated_jobs={recreated} job_creates={creates} status_patches={patches} "
                   f"status_changes={writes} failed_passes={len(failed)}")
    assert not failed, failed[:3]
    assert recreated == 0 and creates == 0
    assert patches == 0
    assert writes == 0, _difference(*next(iter(recorder.last_change.values())))
