"""Gang admission (issue 20): an Animation with parallelism N claims N GPUs under the
operator's caps, all at once or none, and a queued one can say what it waits for."""

from __future__ import annotations

from musepose_operator.gpus.queueing import Caps, QueueEntry
from musepose_operator.gpus.slots import GpuSlots, keeps_gpus

T0 = "2026-01-01T00:00:00Z"


def gang(name: str, gpus: int, *, namespace: str = "team-a", created: str = T0) -> QueueEntry:
    return QueueEntry.of(uid=name, namespace=namespace, name=name, priority=0,
                         created=created, gpus=gpus)


def test_two_gangs_of_two_under_three_gpus_run_one_after_the_other() -> None:
    slots = GpuSlots(Caps(total=3))
    first, second = gang("first", 2), gang("second", 2, created="2026-01-01T00:00:01Z")
    assert slots.claim(first)
    assert not slots.claim(second)  # 1 free: none of its GPUs is taken
    assert (slots.gpus_in_use, slots.free("team-a"), slots.position("second")) == (2, 1, 1)
    slots.release("first")
    assert [e.uid for e in slots.admissible()] == ["second"]
    assert slots.claim(second) and slots.gpus_in_use == 2 and slots.free("team-a") == 1


def test_a_waiting_gang_is_not_overtaken_by_a_smaller_one() -> None:
    slots = GpuSlots(Caps(total=3))
    assert slots.claim(gang("running", 2))
    assert not slots.claim(gang("big", 2, created="2026-01-01T00:00:01Z"))
    assert not slots.claim(gang("small", 1, created="2026-01-01T00:00:02Z"))
    assert slots.gpus_in_use == 2


def test_free_gpus_follow_the_tighter_cap() -> None:
    slots = GpuSlots(Caps(total=7, per_namespace=3))
    assert slots.claim(gang("a", 2, namespace="team-a"))
    assert slots.claim(gang("b", 3, namespace="team-b"))
    assert slots.free("team-a") == 1  # its own cap: 3 - 2
    assert slots.free("team-c") == 2  # the total: 7 - 5
    assert GpuSlots(Caps()).free("team-a") == 0  # no cap: never waits


def test_gpus_are_kept_until_every_worker_has_finished() -> None:
    job = {"spec": {"completionMode": "Indexed", "completions": 2}, "status": {}}

    def pod(index: int, code: int | None) -> dict[str, object]:
        state = {"terminated": {"exitCode": code}} if code is not None else {"running": {}}
        return {"metadata": {"creationTimestamp": T0, "annotations": {
            "batch.kubernetes.io/job-completion-index": str(index)}},
            "status": {"containerStatuses": [{"state": state}]}}

    assert keeps_gpus(job, [pod(0, 0), pod(1, None)], kueue=False)
    assert not keeps_gpus(job, [pod(0, 0), pod(1, 0)], kueue=False)


def test_raising_parallelism_claims_the_new_gpus_under_the_cap() -> None:
    """An edit from 1 to 3 GPUs (a new generation, a new Job) waits for 3 free GPUs like any
    other claim, instead of keeping the 1 it held."""
    slots = GpuSlots(Caps(total=3))
    assert slots.claim(gang("edited", 1))
    assert slots.claim(gang("other", 1, created="2026-01-01T00:00:01Z"))
    assert not slots.claim(gang("edited", 3))
    assert slots.gpus_in_use == 1 and slots.position("edited") == 1
    slots.release("other")
    assert slots.claim(gang("edited", 3)) and slots.gpus_in_use == 3
