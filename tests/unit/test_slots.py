"""The GPU slots and waiting queue (``slots.GpuSlots``) and the one rule for whether a Job
holds its GPUs (``slots.keeps_gpus``): no cluster, no Kubernetes calls."""

from __future__ import annotations

import pytest

from musepose_operator.base.types import Obj
from musepose_operator.gpus.queueing import Caps, QueueEntry
from musepose_operator.gpus.slots import GpuSlots, job_finished, keeps_gpus

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def entry(name: str, *, namespace: str = "team-a", gpus: int = 1, priority: int = 0,
          created: str = T0) -> QueueEntry:
    return QueueEntry.of(uid=name, namespace=namespace, name=name, priority=priority,
                         created=created, gpus=gpus)


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_one_gpu_claims_are_admitted_up_to_the_cap_in_queue_order() -> None:
    slots = GpuSlots(Caps(total=2))
    assert slots.claim(entry("a"))
    assert slots.claim(entry("b"))
    assert not slots.claim(entry("c", created=T1))
    assert not slots.claim(entry("d", created=T1, priority=5))
    # d's priority puts it ahead of c.
    assert (slots.position("d"), slots.position("c")) == (1, 2)
    assert slots.position("a") == 0 and "a" in slots and "c" not in slots
    assert (slots.holders, slots.gpus_in_use) == (2, 2)


def test_a_release_lets_the_head_of_the_queue_start() -> None:
    changes = Changes()
    slots = GpuSlots(Caps(total=1), on_change=changes)
    assert slots.claim(entry("a"))
    assert not slots.claim(entry("b", created=T1))
    before = changes.count
    assert slots.release("a")
    assert changes.count == before + 1  # the queue loop wakes
    assert [e.uid for e in slots.admissible()] == ["b"]
    assert slots.claim(entry("b", created=T1))
    assert not slots.release("nobody")  # nothing changed: nobody woken
    assert changes.count == before + 1


def test_claiming_again_keeps_the_gpus_and_a_changed_entry_moves_in_the_queue() -> None:
    changes = Changes()
    slots = GpuSlots(Caps(total=1), on_change=changes)
    assert slots.claim(entry("a"))
    assert slots.claim(entry("a"))  # a holder asking again
    assert not slots.claim(entry("b", created=T1))
    assert not slots.claim(entry("c", created=T1))
    woken = changes.count
    assert not slots.claim(entry("c", created=T1))  # the same entry: nothing moves
    assert changes.count == woken
    assert not slots.claim(entry("c", created=T1, priority=9))  # edited priority
    assert changes.count == woken + 1
    assert (slots.position("c"), slots.position("b")) == (1, 2)


def test_without_caps_every_claim_is_admitted() -> None:
    slots = GpuSlots(Caps())
    assert all(slots.claim(entry(f"a{i}", gpus=4)) for i in range(10))
    assert slots.gpus_in_use == 40 and len(slots.waiting) == 0


def test_a_running_job_holds_its_gpu_whatever_the_queue_says() -> None:
    slots = GpuSlots(Caps(total=1))
    slots.hold("found-running", "team-b")  # Jobs found running after a restart
    slots.hold("also-running", "team-c")
    assert slots.gpus_in_use == 2  # over the cap: they run anyway
    assert not slots.claim(entry("x"))
    slots.release("found-running")
    assert not slots.claim(entry("x"))  # 1 of 1 still in use
    slots.release("also-running")
    assert slots.claim(entry("x"))


# -- several GPUs per claim: gang admission ------------------------------------------------


def test_a_gang_is_admitted_only_when_all_its_gpus_are_free() -> None:
    slots = GpuSlots(Caps(total=4))
    assert slots.claim(entry("one", gpus=1))
    assert slots.claim(entry("two", gpus=2))
    assert not slots.claim(entry("gang", gpus=4, created=T1))  # 1 of 4 free
    slots.release("two")
    assert not slots.claim(entry("gang", gpus=4, created=T1))  # 3 of 4 free
    slots.release("one")
    assert slots.claim(entry("gang", gpus=4, created=T1))
    assert (slots.holders, slots.gpus_in_use) == (1, 4)


def test_a_waiting_gang_is_not_overtaken_by_smaller_claims_behind_it() -> None:
    slots = GpuSlots(Caps(total=4))
    assert slots.claim(entry("running", gpus=2))
    assert not slots.claim(entry("gang", gpus=4, created=T0, priority=1))
    # One GPU would fit, but the gang is ahead: no backfill, so it is never starved.
    assert not slots.claim(entry("small", gpus=1, created=T1))
    assert slots.position("gang") == 1 and slots.position("small") == 2


def test_a_gang_larger_than_the_cap_is_passed_over_instead_of_blocking_the_queue() -> None:
    slots = GpuSlots(Caps(total=2))
    assert not slots.claim(entry("too-big", gpus=3, priority=1))
    assert slots.claim(entry("small", created=T1))


def test_the_per_namespace_cap_counts_gpus() -> None:
    slots = GpuSlots(Caps(per_namespace=2))
    assert slots.claim(entry("a1", namespace="team-a", gpus=2))
    assert not slots.claim(entry("a2", namespace="team-a", created=T1))
    # A namespace at its cap does not hold others back.
    assert slots.claim(entry("b1", namespace="team-b", gpus=2, created=T1))
    slots.release("a1")
    assert slots.claim(entry("a2", namespace="team-a", created=T1))


def test_one_gpu_each_counts_jobs_as_before() -> None:
    """n = 1 everywhere: the caps count running Jobs, as they did before GPUs were counted."""
    slots = GpuSlots(Caps(total=3, per_namespace=2))
    results = [slots.claim(entry(f"a{i}", namespace="team-a", created=T0)) for i in range(3)]
    results += [slots.claim(entry(f"b{i}", namespace="team-b", created=T1)) for i in range(2)]
    assert results == [True, True, False, True, False]
    assert slots.holders == slots.gpus_in_use == 3


# -- whether a Job holds its GPUs ----------------------------------------------------------


def job(*, conditions: tuple[str, ...] = (), suspend: bool = False) -> Obj:
    return {"metadata": {"name": "j", "namespace": "team-a"}, "spec": {"suspend": suspend},
            "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]}}


def pod(state: Obj, created: str = T0) -> Obj:
    return {"metadata": {"name": "p", "creationTimestamp": created},
            "status": {"containerStatuses": [{"state": state}]}}


RUNNING = {"running": {"startedAt": T0}}
EXITED_0 = {"terminated": {"exitCode": 0, "reason": "Completed"}}
EXITED_75 = {"terminated": {"exitCode": 75, "reason": "Error"}}


@pytest.mark.parametrize(("the_job", "pods", "kueue", "delete_job", "holds"), [
    (job(), [pod(RUNNING)], False, False, True),
    (job(), [], False, False, True),  # made, its pod not yet: the GPU is promised
    (job(), [pod(EXITED_75)], False, False, True),  # a retry needs the GPU again
    (None, [], False, False, False),  # no Job: suspended before its start, rejected, gone
    (job(), [pod(RUNNING)], True, False, False),  # Kueue counts its own quota
    (job(), [pod(RUNNING)], False, True, False),  # stuck and being deleted
    (job(suspend=True), [pod(RUNNING)], False, False, False),
    (job(conditions=("Complete",)), [], False, False, False),
    (job(conditions=("Failed",)), [], False, False, False),
    (job(conditions=("SuccessCriteriaMet",)), [], False, False, False),
    (job(conditions=("FailureTarget",)), [], False, False, False),
    (job(), [pod(EXITED_0)], False, False, False),  # done before the Job says so
    (job(), [pod(EXITED_0, T0), pod(RUNNING, T1)], False, False, True),  # latest counts
], ids=["running", "no-pod-yet", "failed-attempt", "no-job", "kueue", "deleting",
        "suspended", "complete", "failed", "success-criteria-met", "failure-target",
        "runner-exited-0", "latest-pod-running"])
def test_a_job_holds_its_gpus_only_while_it_may_still_run(
        the_job: Obj | None, pods: list[Obj], kueue: bool, delete_job: bool,
        holds: bool) -> None:
    assert keeps_gpus(the_job, pods, kueue=kueue, delete_job=delete_job) is holds


def test_a_condition_that_is_not_true_does_not_finish_a_job() -> None:
    pending = job()
    pending["status"]["conditions"] = [{"type": "Complete", "status": "False"}]
    assert not job_finished(pending)
    assert job_finished(job(conditions=("Complete",)))
