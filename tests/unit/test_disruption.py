"""A disrupted runner pod (eviction, preemption, node loss) is explained, and the run does
not go back to Pending (pure; no cluster)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from musepose_operator.api import Phase
from musepose_operator.cluster.watch_cache import Views
from musepose_operator.reconcile.disruptions import Disruptions
from musepose_operator.status.mapping import observe
from musepose_operator.status.transitions import announcement, settle

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
JOB = {"metadata": {"name": "dance-g1-abc123", "namespace": "default"},
       "spec": {"backoffLimit": 3}, "status": {"startTime": "2026-01-01T11:50:00Z"}}
EVICTED = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
           "message": "Eviction API: evicting"}


def runner_pod(*conditions: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "dance-g1-abc123-x1", "namespace": "default",
                            "creationTimestamp": "2026-01-01T11:55:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:59Z"
    return {"metadata": meta, "status": {"phase": "Running", "conditions": list(conditions)}}


def see(*pods: dict[str, Any]) -> Any:
    return observe(JOB, list(pods), now=NOW, pending_timeout=300, kueue_managed=False)


def test_an_evicted_pod_is_explained() -> None:
    seen = see(runner_pod(EVICTED, deleting=True))
    assert (seen.phase, seen.reason) == (Phase.PENDING, "Disrupted")
    assert seen.message == ("the runner pod was disrupted (EvictionByEvictionAPI: Eviction "
                            "API: evicting); the Job starts another, not counted against "
                            "retries")


def test_a_pod_deleted_without_disruption_is_not_called_disrupted() -> None:
    assert see(runner_pod(deleting=True)).reason == "JobCreated"


def test_a_disrupted_run_stays_running() -> None:
    before = {"observedGeneration": 1, "phase": "Running", "reason": "Running", "attempts": 1}
    settled = settle(before, 1, see(runner_pod(EVICTED, deleting=True)))
    assert settled is not None
    assert (settled.phase, settled.reason) == (Phase.RUNNING, "Disrupted")


def test_the_disruption_is_told_until_the_replacement_pod_runs() -> None:
    """The Job makes the next pod at once: while it is pending the status still says why
    the run started over; once it runs, the run is Running again."""
    replacement = {"metadata": {"name": "dance-g1-abc123-x2", "namespace": "default",
                                "creationTimestamp": "2026-01-01T11:59:59Z"},
                   "status": {"phase": "Pending"}}
    evicted = runner_pod(EVICTED, deleting=True)
    assert see(evicted, replacement).reason == "Disrupted"
    running = {**replacement, "status": {"phase": "Running"}}
    assert see(evicted, running).reason == "Running"


def test_a_disruption_is_announced_by_the_pod_watch_not_by_the_status_move() -> None:
    """The pod's own Event says it (once per pod, see below); the status move to
    Disrupted posts none, or a pass landing in the right second would make two."""
    before = {"observedGeneration": 1, "phase": "Running", "reason": "Running"}
    after = {"observedGeneration": 1, "phase": "Running", "reason": "Disrupted",
             "message": "the runner pod was disrupted"}
    assert announcement(before, after) is None


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, tuple[Any, ...]]] = []

    async def event(self, body: Any, kind: str, reason: str, message: str,
                    *occasion: Any) -> None:
        self.events.append((kind, reason, message, occasion))


def test_each_disrupted_pod_is_told_once_naming_the_pod_and_its_cause() -> None:
    views = Views()
    views.put_animation({"metadata": {"name": "dance", "namespace": "default", "uid": "a1",
                                      "resourceVersion": "1"}})
    recorder = _Recorder()
    tell = Disruptions(views, recorder)  # type: ignore[arg-type]
    evicted = runner_pod(EVICTED, deleting=True)
    evicted["metadata"]["uid"] = "p1"
    healthy = runner_pod()
    healthy["metadata"].update(uid="p2", name="dance-g1-abc123-x2")

    async def watch() -> None:
        await tell.saw_pod("a1", healthy, deleted=False)
        await tell.saw_pod("a1", evicted, deleted=False)
        await tell.saw_pod("a1", evicted, deleted=False)  # its next update
        await tell.saw_pod("a1", evicted, deleted=True)  # its deletion: no second request

    asyncio.run(watch())
    assert [(kind, reason, occasion) for kind, reason, _, occasion in recorder.events] == [
        ("Normal", "Disrupted", ("pod", "p1"))]
    assert recorder.events[0][2] == (
        "the runner pod dance-g1-abc123-x1 was disrupted (EvictionByEvictionAPI: Eviction "
        "API: evicting); the Job starts another, not counted against retries")
