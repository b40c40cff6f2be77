"""The reconciler's one decision (``reconcile.decide``): what a pass does, from inputs built
by hand (the Animation, its Jobs and pods as the watches deliver them, the queue's offer).
No cluster, no Kubernetes calls: each test asserts what a user would notice (GPUs held or
freed, a place in the queue, a Job made, deleted or suspended, the status said)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes import client

from musepose_operator.admission.validation import Rejection
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.base.types import Obj
from musepose_operator.gpus.queueing import Caps, QueueEntry
from musepose_operator.gpus.slots import RELEASE, Claim, GpuSlots, Hold, Offer
from musepose_operator.planning.run_key import NotOurs
from musepose_operator.reconcile.decide import Decision, Inputs, decide, start_failed
from tests.unit.test_planning import animation, make_settings

NOW = dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC)
JOB_G1 = "dance-g1-fdb3bc"  # job_name("dance", UID, 1), written out
JOB_G2 = "dance-g2-807962"


def job(name: str = JOB_G1, *, conditions: tuple[str, ...] = (), suspend: bool = False,
        **status: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "team-a"},
            "spec": {"suspend": suspend},
            "status": {"conditions": [{"type": c, "status": "True",
                                       "lastTransitionTime": "2026-01-01T00:09:00Z"}
                                      for c in conditions], **status}}


def pod(*, running: bool = False, exit_code: int | None = None, reason: str | None = None,
        unschedulable: bool = False, created: str = "2026-01-01T00:01:00Z") -> Obj:
    state: Obj = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": reason or "Error",
                                "finishedAt": "2026-01-01T00:09:00Z"}}
    conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": "0/3 nodes have a free GPU"}] if unschedulable else []
    return {"metadata": {"name": "dance-pod", "creationTimestamp": created},
            "status": {"phase": "Running" if running else "Pending", "conditions": conditions,
                       "containerStatuses": [{"state": state}]}}


def entry(gpus: int = 1) -> QueueEntry:
    return QueueEntry.of(uid="u-dance", namespace="team-a", name="dance", priority=0,
                         created="2026-01-01T00:00:00Z", gpus=gpus)


def inputs(body: Obj | None = None, *, jobs: tuple[Obj, ...] = (), pods: tuple[Obj, ...] = (),
           wanted: str = JOB_G1, offer: Offer | None = None, gpus: int = 1,
           kueue: bool = False, weights_waiting: str | None = None,
           settings: Any = None) -> Inputs:
    body = body or animation()
    settings = settings or make_settings(pending_timeout_seconds=300)
    spec: AnimationSpec | Rejection = AnimationSpec.model_validate(body["spec"])
    return Inputs(body, spec, settings, NOW, kueue=kueue, jobs=jobs, wanted=wanted,
                  pods=pods, gpus=gpus, offer=offer, weights_waiting=weights_waiting)


def said(decision: Decision) -> tuple[Phase, str]:
    assert decision.status is not None
    return decision.status.phase, decision.status.reason


# -- GPUs: held, freed, queued --------------------------------------------------------------

def test_a_running_animation_holds_its_gpus() -> None:
    decision = decide(inputs(jobs=(job(),), pods=(pod(running=True),), gpus=2))
    assert decision.gpus == Hold("team-a", 2)
    assert said(decision) == (Phase.RUNNING, "Running")
    assert decision.start is None and not decision.retire and not decision.delete_job


def test_a_finished_animation_releases_its_gpus_and_says_so() -> None:
    done = job(conditions=("Complete",), completionTime="2026-01-01T00:09:30Z")
    decision = decide(inputs(jobs=(done,), pods=(pod(exit_code=0),)))
    assert decision.gpus == RELEASE
    assert said(decision) == (Phase.SUCCEEDED, "Succeeded")
    assert decision.start is None


def test_a_runner_that_exited_0_frees_the_gpus_before_the_job_completes() -> None:
    decision = decide(inputs(jobs=(job(),), pods=(pod(exit_code=0),)))
    assert decision.gpus == RELEASE
    assert said(decision) == (Phase.RUNNING, "Running")


def test_a_settled_run_frees_its_gpus_and_writes_nothing() -> None:
    body = {**animation(), "status": {"observedGeneration": 1, "phase": "Succeeded"}}
    decision = decide(inputs(body, jobs=(job(conditions=("Complete",)),)))
    assert decision == Decision(RELEASE)


def test_an_animation_beyond_the_queues_capacity_is_queued_with_its_place() -> None:
    offer = Offer(entry(), granted=False, place=3, free=0)
    decision = decide(inputs(offer=offer, jobs=()))
    assert decision.gpus == Claim(offer)  # it joins the queue
    assert decision.start is None
    assert said(decision) == (Phase.QUEUED, "WaitingForCapacity")
    assert decision.status is not None
    assert decision.status.message == "waiting for 1 GPU, 0 free: number 3 in the queue"
    assert decision.status.extras["queuePosition"] == 3


def test_the_queues_offer_reads_the_slots_without_changing_them() -> None:
    """What the pass gathers: a full queue's offer names the place the claim then takes."""
    slots = GpuSlots(Caps(total=2))
    assert slots.claim(QueueEntry.of(uid="a", namespace="team-a", name="a", priority=0,
                                     created="2026-01-01T00:00:00Z", gpus=2))
    assert not slots.claim(QueueEntry.of(uid="b", namespace="team-b", name="b", priority=0,
                                         created="2026-01-01T00:00:01Z"))
    offer = slots.offer(entry())  # created before b: ahead of it
    assert offer == Offer(entry(), granted=False, place=1, free=0)
    assert list(slots.waiting) == ["b"]  # reading changed nothing
    decision = decide(inputs(offer=offer))
    assert slots.apply("u-dance", decision.gpus)  # the claim gets what the offer said
    assert list(slots.waiting) == ["u-dance", "b"] and slots.gpus_in_use == 2


def test_a_stale_offer_is_told_apart() -> None:
    """Another pass took the last GPU between the offer and the claim: the claim says so
    (the pass decides again) and the Animation waits instead of over-filling the caps."""
    slots = GpuSlots(Caps(total=1))
    offer = slots.offer(entry())
    assert offer.granted
    assert slots.claim(QueueEntry.of(uid="x", namespace="team-b", name="x", priority=0,
                                     created="2026-01-01T00:00:05Z"))
    assert not slots.apply("u-dance", Claim(offer))
    assert slots.gpus_in_use == 1 and list(slots.waiting) == ["u-dance"]


def test_an_animation_with_free_gpus_claims_them_and_starts_its_job() -> None:
    offer = Offer(entry(), granted=True)
    decision = decide(inputs(offer=offer))
    assert decision.gpus == Claim(offer)
    assert decision.start is not None and decision.start["metadata"]["name"] == JOB_G1
    assert said(decision) == (Phase.PENDING, "JobCreated")
    assert decision.job_name == JOB_G1


def test_a_deleted_animation_frees_its_slot_and_cleans_up() -> None:
    body = animation()
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    decision = decide(inputs(body, jobs=(job(),), pods=(pod(running=True),)))
    assert decision == Decision(RELEASE, finalize=True)


def test_a_rejected_spec_fails_and_holds_nothing() -> None:
    rejection = Rejection("StorageScopeViolation", "referenceImage is outside the scope")
    body = animation()
    decision = decide(Inputs(body, rejection, make_settings(), NOW))
    assert decision.gpus == RELEASE and decision.rejected == rejection
    assert said(decision) == (Phase.FAILED, "StorageScopeViolation")
    assert decision.start is None and decision.finalizers is None


# -- spec changes -----------------------------------------------------------------------------

def test_a_spec_change_on_a_running_animation_replaces_its_job() -> None:
    """Generation 2 asks for something the running generation-1 Job does not run: that Job
    goes and generation 2's starts (its GPUs claimed again)."""
    body = animation(generation=2, seed=7)
    old = job(JOB_G1)
    offer = Offer(entry(), granted=True)
    decision = decide(inputs(body, jobs=(old,), pods=(), wanted=JOB_G2, offer=offer))
    assert decision.retire == (old,)
    assert decision.start is not None and decision.start["metadata"]["name"] == JOB_G2
    assert decision.start["metadata"]["labels"]["musepose.io/generation"] == "2"
    assert decision.gpus == Claim(offer)


def test_suspending_a_running_animation_suspends_its_job_and_frees_the_gpus() -> None:
    body = animation(generation=2, suspend=True)
    decision = decide(inputs(body, jobs=(job(JOB_G1),), pods=(pod(running=True),)))
    assert decision.suspend is True and not decision.retire and decision.start is None
    assert decision.gpus == RELEASE
    assert said(decision) == (Phase.SUSPENDED, "Suspended")


def test_resuming_resumes_the_job_and_holds_the_gpus_again() -> None:
    decision = decide(inputs(jobs=(job(suspend=True),), pods=(pod(running=True),)))
    assert decision.suspend is False
    assert decision.gpus == Hold("team-a", 1)


def test_a_kueue_job_is_never_suspended_by_the_operator() -> None:
    body = animation(queueName="gpus")
    decision = decide(inputs(body, jobs=(job(suspend=True),), kueue=True))
    assert decision.suspend is None and decision.gpus == RELEASE
    assert said(decision) == (Phase.QUEUED, "WaitingForKueue")


def test_a_finalizer_only_for_outputs_to_delete() -> None:
    body = animation(outputReclaimPolicy="Delete")
    decision = decide(inputs(body, jobs=(job(),), pods=(pod(running=True),)))
    assert decision.finalizers == ["musepose.io/output-cleanup"]
    body = animation()
    body["metadata"]["finalizers"] = ["other", "musepose.io/output-cleanup"]
    assert decide(inputs(body, jobs=(job(),))).finalizers == ["other"]
    assert decide(inputs(jobs=(job(),))).finalizers is None  # nothing to change


# -- before the start ---------------------------------------------------------------------

def test_suspended_before_its_start_no_job_and_no_gpus() -> None:
    decision = decide(inputs(animation(suspend=True)))
    assert decision.gpus == RELEASE and decision.start is None
    assert said(decision) == (Phase.SUSPENDED, "Suspended")


def test_model_files_not_ready_no_job_and_a_later_look() -> None:
    decision = decide(inputs(weights_waiting="the weights pull Job team-a/pull is running",
                             offer=Offer(entry(), granted=True)))
    assert decision.gpus == RELEASE and decision.start is None and decision.recheck
    assert said(decision) == (Phase.PENDING, "WaitingForWeights")
    assert decision.status is not None
    assert decision.status.message == "the weights pull Job team-a/pull is running"


def test_under_kueue_the_job_starts_suspended_without_a_gpu_claim() -> None:
    body = animation(queueName="gpus")
    decision = decide(inputs(body, kueue=True))
    assert decision.gpus == RELEASE
    assert decision.start is not None and decision.start["spec"]["suspend"] is True
    assert said(decision) == (Phase.QUEUED, "WaitingForKueue")


# -- a run that goes wrong ------------------------------------------------------------------

def test_a_pod_stuck_past_the_pending_timeout_deletes_the_job_and_frees_the_gpus() -> None:
    stuck = pod(unschedulable=True, created="2026-01-01T00:01:00Z")  # 9 min before NOW
    decision = decide(inputs(jobs=(job(),), pods=(stuck,)))
    assert decision.delete_job and decision.gpus == RELEASE
    assert said(decision) == (Phase.FAILED, "Unschedulable")


def test_a_pod_waiting_within_the_timeout_keeps_its_job() -> None:
    waiting = pod(unschedulable=True, created="2026-01-01T00:09:00Z")  # 1 min before NOW
    decision = decide(inputs(jobs=(job(),), pods=(waiting,)))
    assert not decision.delete_job and decision.gpus == Hold("team-a", 1)
    assert said(decision) == (Phase.PENDING, "Unschedulable")


def test_out_of_gpu_memory_retries_once_in_lower_vram_mode() -> None:
    failed = job(conditions=("Failed",))
    decision = decide(inputs(jobs=(failed,), pods=(pod(exit_code=137, reason="OOMKilled"),)))
    assert decision.gpus == RELEASE
    assert said(decision) == (Phase.RUNNING, "MemoryFallback")


def test_a_start_that_failed_frees_the_gpus_and_says_why() -> None:
    claimed = inputs(offer=Offer(entry(), granted=True))
    busy = start_failed(claimed, client.ApiException(status=500, reason="Internal Error"))
    assert busy.gpus == RELEASE and busy.recheck
    assert said(busy) == (Phase.PENDING, "StartFailed")
    refused = client.ApiException(status=422, reason="Unprocessable Entity")
    refused.body = '{"message": "Job is invalid"}'
    invalid = start_failed(claimed, refused)
    assert invalid.gpus == RELEASE and not invalid.recheck
    assert said(invalid) == (Phase.FAILED, "StartRefused")
    assert invalid.status is not None and invalid.status.message.endswith(": Job is invalid")
    taken = start_failed(claimed, NotOurs("Secret", "team-a", "dance-key"))
    assert said(taken) == (Phase.FAILED, "NameTaken") and not taken.recheck
