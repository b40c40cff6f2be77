"""Runner pods evicted mid-run (a DisruptionTarget, as preemption or a drained node give):
the Job starts another pod without counting it against retries, each evicted Animation
gets exactly one Disrupted Event, the run never shows going back, and nothing is
duplicated or lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.faults.conftest import report, scale
from tests.faults.scenario import Figures, create_batch, phases, wait_finished, watched_operator
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import events_of

pytestmark = pytest.mark.cluster


def running_pods(api: client.ApiClient, namespace: str) -> list[Any]:
    return [p for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def test_evicted_runner_pods_are_retried_for_free(
        kube_api: client.ApiClient, cluster: Environment, fault_namespace: str,
        executing_nodes: dict[str, str], minio: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    seeds = {f"evict-{i}": 912 for i in range(scale(4, 10))}  # 12 s of work each
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    with watched_operator(kube_api, cluster, ns, minio, executing_nodes,
                          tmp_path / "operator.log") as (operator, recorder):
        create_batch(kube_api, ns, seeds)
        eventually("every run under way", lambda: set(
            phases(kube_api, ns, list(seeds)).values()) == {"Running"}
            and len(running_pods(kube_api, ns)) == len(seeds), timeout=120)
        for pod in running_pods(kube_api, ns):
            core.create_namespaced_pod_eviction(pod.metadata.name, ns, client.V1Eviction(
                metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=ns)))
        finished = wait_finished(kube_api, ns, list(seeds), timeout=180)

    jobs = batch.list_namespaced_job(ns).items
    counted = sum(job.status.failed or 0 for job in jobs)
    # Disrupted Events per Animation, an Event's own series count included.
    disrupted = {name: sum(e.count or 1 for e in events_of(kube_api, ns, name)
                           if e.reason == "Disrupted") for name in seeds}
    explained = sum(disrupted.values())
    figures = Figures.of(kube_api, ns, recorder, {n: 912 for n in seeds},
                         evictions=len(seeds), counted_failures=counted,
                         disruption_events=explained)
    report(capsys, figures.line("eviction"))
    assert finished, operator.output()
    figures.assert_clean(operator.output())
    assert counted == 0  # podFailurePolicy: DisruptionTarget → Ignore
    # Each evicted run's status (and its one Event) said why it started over.
    assert disrupted == dict.fromkeys(seeds, 1), disrupted
