"""Status writes per Animation: a run from apply to Succeeded costs a handful of writes, and
what a step says in passing (a new message, the attempt count, the Job's start time) rides
along with the next write instead of costing one of its own."""

from __future__ import annotations

from kubernetes import client

from tests.faults.recorder import Recorder
from tests.harness.processes import eventually
from tests.operator_env import OperatorProcess, animation, create_animation, get_animation

COUNT = 3  # within the test nodes' 4 GPUs: a pod waiting for one is a new reason
MAX_WRITES = 4  # Pending, Running, the runner done, Succeeded


def test_a_run_costs_at_most_four_status_writes(
    kube_api: client.ApiClient, ready_namespace: str, fake_operator: OperatorProcess
) -> None:
    ns = ready_namespace
    recorder = Recorder(kube_api, ns).start()
    names = [f"writes-{i}" for i in range(COUNT)]
    try:
        for name in names:
            create_animation(kube_api, ns, animation(name, referenceImage="s3://inputs/a.png"))
        eventually("every Animation Succeeded", lambda: all(
            (get_animation(kube_api, ns, n).get("status") or {}).get("phase") == "Succeeded"
            for n in names), timeout=180)
        eventually("the recorder saw every end", lambda: all(
            recorder.sightings[n] and recorder.sightings[n][-1].phase == "Succeeded"
            for n in names))
    finally:
        recorder.stop()
    for name in names:
        seen = recorder.sightings[name]
        assert len(seen) <= MAX_WRITES, (name, seen)
        assert seen[0].phase == "Pending", (name, seen)
        final = get_animation(kube_api, ns, name)["status"]
        # What waited for a later write is there in the end.
        assert final["attempts"] == 1 and final["startTime"], final
