"""Status writes per Animation, counted as requests in the API server's audit log: a run
from apply to Succeeded costs 2-4 status PATCHes, and what a step says in passing (a new
message, the attempt count, the Job's start time) rides along with the next write instead
of costing one of its own. Re-applying an unchanged manifest (as GitOps tools do all the
time) costs no request at all, whether the operator sees it live or after a restart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from tests.faults.recorder import Recorder
from tests.faults.scenario import probe
from tests.harness import audit
from tests.harness.environment import Environment
from tests.harness.processes import eventually
from tests.operator_env import (
    FAKE_RUNNER,
    OperatorProcess,
    animation,
    create_animation,
    events_of,
    get_animation,
    jobs_of,
    operator_process,
    operator_settings,
    wait_finished,
)

COUNT = 3  # within the test nodes' 4 GPUs: a pod waiting for one is a new reason
MIN_WRITES, MAX_WRITES = 2, 4  # Pending, Running, the runner done, Succeeded
QUIET = 3.0  # seconds without a write: longer than the operator's 2 s progress interval


def _status_patches(log: Path, start: int, namespace: str, name: str | None = None) -> int:
    return sum(audit.count(log, start, namespace, verb, "animations/status", name)
               for verb in ("patch", "update"))


def _settle(log: Path, start: int, namespace: str) -> None:
    audit.quiet("the operator's writes", lambda: audit.writes(log, start, namespace),
                quiet_for=QUIET, timeout=90)


def test_a_run_costs_two_to_four_status_patches(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str,
    fake_operator: OperatorProcess
) -> None:
    ns, log = ready_namespace, cluster.audit_log
    start = audit.offset(log)
    recorder = Recorder(kube_api, ns).start()
    names = [f"writes-{i}" for i in range(COUNT)]
    try:
        for name in names:
            create_animation(kube_api, ns, animation(name, referenceImage="s3://inputs/a.png"))
        eventually("every Animation Succeeded", lambda: all(
            (get_animation(kube_api, ns, n).get("status") or {}).get("phase") == "Succeeded"
            for n in names), timeout=180)
        _settle(log, start, ns)
    finally:
        recorder.stop()
    patches = {name: _status_patches(log, start, ns, name) for name in names}
    assert all(MIN_WRITES <= n <= MAX_WRITES for n in patches.values()), (
        patches, {n: recorder.sightings[n] for n in names})
    assert not fake_operator.failed_passes()
    for name in names:
        seen = recorder.sightings[name]
        assert seen[0].phase == "Pending", (name, seen)
        final = get_animation(kube_api, ns, name)["status"]
        # What waited for a later write is there in the end.
        assert final["attempts"] == 1 and final["startTime"], final


@contextmanager
def _verbose_operator(cluster: Environment, namespace: str, minio: Any,
                      tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with kopf's per-object log on: "[ns/name] Handler '…' succeeded" after
    each Animation event's pass."""
    operator = operator_process(cluster.kubeconfig, [namespace],
                                operator_settings(minio.endpoint, runner=FAKE_RUNNER),
                                tmp_path / "operator.log")
    operator.argv.append("--verbose")
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def _handled(operator: OperatorProcess, namespace: str, name: str) -> int:
    pattern = re.compile(rf"\[{re.escape(namespace)}/{re.escape(name)}\] Handler '[^']*' "
                         "succeeded")
    return len(pattern.findall(operator.log.read_text(errors="replace")))


def _reapply(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    """Server-side apply by another field manager: a new resourceVersion, the same
    generation."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest["metadata"]["name"], manifest,
        field_manager="gitops", force=True, _content_type="application/apply-patch+yaml")


def _observed(api: client.ApiClient, namespace: str, name: str) -> tuple[Any, ...]:
    return (get_animation(api, namespace, name)["status"],
            {(j.metadata.name, j.metadata.uid) for j in jobs_of(api, namespace, name)},
            {(e.metadata.name, e.count) for e in events_of(api, namespace, name)})


def test_reapplying_the_same_spec_while_the_operator_runs_sends_nothing(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str, minio: Any,
    tmp_path: Path
) -> None:
    """The live path: the watch delivers the re-applied object to a running operator."""
    ns, log = ready_namespace, cluster.audit_log
    manifest = animation("steady", referenceImage="s3://inputs/a.png", seed=1)
    with _verbose_operator(cluster, ns, minio, tmp_path) as operator:
        created = audit.offset(log)
        create_animation(kube_api, ns, manifest)
        wait_finished(kube_api, ns, "steady")
        _settle(log, created, ns)
        before, handled = _observed(kube_api, ns, "steady"), _handled(operator, ns, "steady")
        start = audit.offset(log)
        _reapply(kube_api, ns, manifest)
        reapplied = get_animation(kube_api, ns, "steady")
        eventually("the operator's pass over the re-applied Animation", lambda: _handled(
            operator, ns, "steady") > handled, timeout=60)
        _settle(log, start, ns)
        failed = operator.failed_passes()
    assert reapplied["metadata"]["generation"] == 1
    requests = [r for r in audit.requests(log, start) if r.namespace == ns]
    # The re-apply itself is the only write: no status PATCH, Job or Event create.
    assert [(r.verb, r.resource) for r in requests] == [("patch", "animations")], requests
    after = get_animation(kube_api, ns, "steady")
    assert after["metadata"]["resourceVersion"] == reapplied["metadata"]["resourceVersion"]
    assert _observed(kube_api, ns, "steady") == before
    assert not failed, failed[:3]


def test_reapplying_the_same_spec_while_the_operator_is_down_sends_nothing(
    kube_api: client.ApiClient, cluster: Environment, ready_namespace: str,
    fake_operator: OperatorProcess
) -> None:
    """The restart path: a fresh start reconciles every Animation once."""
    ns, log = ready_namespace, cluster.audit_log
    manifest = animation("steady", referenceImage="s3://inputs/a.png", seed=1)
    create_animation(kube_api, ns, manifest)
    wait_finished(kube_api, ns, "steady")
    fake_operator.stop()  # nothing of the operator's may be in flight while we look
    before = _observed(kube_api, ns, "steady")
    _reapply(kube_api, ns, manifest)
    reapplied = get_animation(kube_api, ns, "steady")
    start = audit.offset(log)
    fake_operator.start()
    eventually("a finished pass over the re-applied Animation",
               lambda: probe(fake_operator).get("reconciled", 0) >= 1, timeout=60)
    _settle(log, start, ns)
    assert [r for r in audit.requests(log, start) if r.namespace == ns] == []
    after = get_animation(kube_api, ns, "steady")
    assert after["metadata"]["resourceVersion"] == reapplied["metadata"]["resourceVersion"]
    assert _observed(kube_api, ns, "steady") == before
    assert not fake_operator.failed_passes()
