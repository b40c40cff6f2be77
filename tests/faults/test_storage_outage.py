"""The object store goes down while runs are writing to it, then comes back: the runner
reports the failed upload as transient (every failed pod ended with exit 75 and the reason
StorageUnavailable), the Job retries, the videos end up
complete, no partial object is ever left, and the status never goes back."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from musepose_runner.contract.job_spec import ExitCode, RunResult
from tests.faults.conftest import report
from tests.faults.scenario import Figures, create_batch, phases, wait_finished, watched_operator
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import get_animation

pytestmark = pytest.mark.cluster
SEED = 1077  # the fake runner works 4 s, then writes its video and poster


def failed_pods(api: client.ApiClient, namespace: str) -> list[Any]:
    return [p for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
            if p.status.phase == "Failed"]


def how_it_ended(pod: Any) -> tuple[int | None, str | None]:
    """The runner container's exit code and the reason of its result (the termination
    message, a RunResult)."""
    state = (pod.status.container_statuses or [None])[0]
    terminated = state.state.terminated if state and state.state else None
    if terminated is None:
        return None, None
    result = RunResult.model_validate_json(terminated.message) if terminated.message else None
    return terminated.exit_code, result.reason if result else None


def test_object_store_outage_during_uploads(
        kube_api: client.ApiClient, cluster: Environment, fault_namespace: str,
        executing_nodes: dict[str, str], minio: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ns = fault_namespace
    store = minio.client()
    if not store.bucket_exists("videos"):
        store.make_bucket("videos")
    seeds = {f"upload-{i}": SEED for i in range(3)}
    with watched_operator(kube_api, cluster, ns, minio, executing_nodes,
                          tmp_path / "operator.log") as (operator, recorder):
        create_batch(kube_api, ns, seeds)
        eventually("every run under way", lambda: set(
            phases(kube_api, ns, list(seeds)).values()) == {"Running"}, timeout=120)
        minio.halt()
        try:
            # Each first attempt reaches its upload while the store is down.
            eventually("every first attempt failed",
                       lambda: len(failed_pods(kube_api, ns)) >= len(seeds), timeout=120)
        finally:
            minio.restart()
        finished = wait_finished(kube_api, ns, list(seeds), timeout=180)

    failures = [how_it_ended(p) for p in failed_pods(kube_api, ns)]
    figures = Figures.of(kube_api, ns, recorder, dict.fromkeys(seeds, 904),
                         outage_failures=len(failures))
    report(capsys, figures.line("storage-outage"))
    assert finished, operator.output()
    figures.assert_clean(operator.output())
    # Every failed attempt said why the way the contract says: transient, exit 75.
    assert len(failures) >= len(seeds)
    assert set(failures) == {(ExitCode.TRANSIENT, "StorageUnavailable")}, failures
    names = set()
    for name in seeds:
        status = get_animation(kube_api, ns, name)["status"]
        assert status["phase"] == "Succeeded" and status["attempts"] >= 2, status
        output = status["output"]
        key = f"{ns}/{name}.mp4"
        data = store.get_object("videos", key).read()
        assert hashlib.sha256(data).hexdigest() == output["sha256"]  # complete
        names |= {key, f"{ns}/{name}.png"}
    # Nothing but the videos and posters: no partial or temporary object.
    listed = {o.object_name for o in store.list_objects("videos", prefix=f"{ns}/",
                                                        recursive=True)}
    assert listed == names
