"""What one reconciler pass does, decided from what it gathered. Pure: no I/O, no clock.

A pass (``controller.Controller``) is three steps: 1 gather the ``Inputs`` (the Animation,
its Jobs and pods from the views, the queue's offer for its GPUs, whether the model files
are ready, the time), 2 ``decide``, 3 apply the ``Decision`` (API calls only, each only for
what changes). ``decide``'s guards are numbered and the first that applies decides, as in
Kueue's ReconcileGenericJob.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace

from musepose_operator.admission.validation import Rejection
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.base import labels as L
from musepose_operator.base.types import Obj
from musepose_operator.gpus.slots import (
    RELEASE,
    Claim,
    GpuChange,
    Hold,
    Offer,
    job_finished,
    keeps_gpus,
)
from musepose_operator.planning import plan_job
from musepose_operator.planning.fallback import fallback_for
from musepose_operator.planning.parallel import waiting_message, workers_status
from musepose_operator.planning.run_key import NotOurs
from musepose_operator.reconcile.weights_gate import WAITING_REASON
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation, observe, run_settled

# A Kueue-managed Job waits as long as Kueue keeps it suspended: never "stuck".
KUEUE_PENDING_TIMEOUT = 1e9


@dataclass(frozen=True)
class Inputs:
    """What a pass decides on (step 1's harvest)."""

    animation: Obj  # as read: metadata, spec, status
    spec: AnimationSpec | Rejection  # the spec as it may run, or why it may not
    settings: Settings
    now: dt.datetime
    kueue: bool = False  # its Jobs are Kueue's to admit (spec.queueName or the default)
    fallback: bool = False  # this generation runs its lower-VRAM retry
    jobs: tuple[Obj, ...] = ()  # every Job of the Animation
    wanted: str | None = None  # the name of this generation's Job
    pods: tuple[Obj, ...] = ()  # the pods of this generation's Job
    gpus: int = 1  # GPUs it holds while it runs (0: a pose preview, no slot at all)
    offer: Offer | None = None  # what claiming its GPUs gives now (None: not asked)
    weights_waiting: str | None = None  # why the model files are not ready (None: they are)

    @property
    def status(self) -> Obj:
        return dict(self.animation.get("status") or {})

    @property
    def generation(self) -> int:
        return int(self.animation["metadata"].get("generation") or 1)

    @property
    def job(self) -> Obj | None:
        """This generation's Job (None: not made yet)."""
        return next((j for j in self.jobs if j["metadata"]["name"] == self.wanted), None)


@dataclass(frozen=True)
class Decision:
    """What step 3 does, in this order: finalizers, old Jobs, the Job's suspend, a stuck
    Job, GPUs, the cleanup after deletion, the start, a later look, the status."""

    gpus: GpuChange  # hold, claim or free its GPUs
    status: Observation | None = None  # what the status says (None: leave it)
    job_name: str | None = None  # the Job the status names
    rejected: Rejection | None = None  # the spec cannot run: why (the Accepted condition)
    finalizers: list[str] | None = None  # the finalizer list to write (None: as it is)
    retire: tuple[Obj, ...] = ()  # earlier generations' Jobs to delete, with their Services
    suspend: bool | None = None  # set the Job's spec.suspend (None: as it is)
    delete_job: bool = False  # this generation's Job is stuck: delete it
    finalize: bool = False  # deleted: clean up its outputs, then let it go
    start: Obj | None = None  # the Job to make (with its key Secret and its Service)
    recheck: bool = False  # pass again shortly (the weights pull, a failed start)


def decide(inputs: Inputs) -> Decision:
    """The pass's decision: the first guard that applies decides."""
    meta = inputs.animation["metadata"]
    # 1. Deleted: its GPUs go, then its outputs are cleaned up and the finalizer goes.
    if meta.get("deletionTimestamp"):
        return Decision(RELEASE, finalize=True)
    spec = inputs.spec
    # 2. A spec that cannot run: Failed, saying what to fix; nothing held, nothing started.
    if isinstance(spec, Rejection):
        return Decision(RELEASE, Observation(Phase.FAILED, spec.reason, spec.message),
                        rejected=spec)
    job = inputs.job
    # 3. This generation's run is over and its status says so: its GPUs go, nothing written.
    if run_settled(inputs.status, inputs.generation) and (job is None or job_finished(job)):
        return _tidy(inputs, spec, Decision(RELEASE))
    # 4. Its Job exists: follow it.
    if job is not None:
        return _tidy(inputs, spec, _follow(inputs, spec, job))
    # 5. Suspended before its start: no Job, no GPUs.
    if spec.suspend:
        return _tidy(inputs, spec, Decision(RELEASE, _said(inputs, spec, Observation(
            Phase.SUSPENDED, "Suspended",
            "suspended before starting: set spec.suspend to false to run"))))
    # 6. The model files are not ready: no runner Job before the weights pull completed.
    if inputs.weights_waiting is not None:
        return _tidy(inputs, spec, Decision(RELEASE, _said(inputs, spec, Observation(
            Phase.PENDING, WAITING_REASON, inputs.weights_waiting)), recheck=True))
    # 7. Its GPUs are not all free: it waits in the queue, and says where (a pose preview
    # takes none, so it never waits).
    offer = inputs.offer
    if not inputs.kueue and inputs.gpus and offer is not None and not offer.granted:
        return _tidy(inputs, spec, Decision(Claim(offer), _said(inputs, spec, Observation(
            Phase.QUEUED, "WaitingForCapacity",
            waiting_message(inputs.gpus, offer.free, offer.place),
            extras={"queuePosition": offer.place}))))
    # 8. Start its Job: with its GPUs claimed, or for Kueue to admit.
    return _tidy(inputs, spec, _start(inputs, spec))


def start_failed(inputs: Inputs, err: Exception) -> Decision:
    """All or nothing: a start that failed after the claim (the key Secret, the Service or
    the Job refused) frees the GPUs at once and says why. A name taken by someone else's
    object or a request the API server refuses as invalid will not succeed on retry;
    anything else is tried again shortly."""
    if not isinstance(inputs.spec, AnimationSpec):
        raise TypeError("only an accepted spec starts")
    recheck = False
    status = getattr(err, "status", None)
    reason = getattr(err, "reason", None) or type(err).__name__
    if isinstance(err, NotOurs):
        seen = Observation(Phase.FAILED, "NameTaken", str(err))
    elif isinstance(status, int) and 400 <= status < 500 and status not in (409, 429):
        seen = Observation(Phase.FAILED, "StartRefused",
                           f"the API server refused the run's objects ({status} "
                           f"{reason}): {api_message(err)}")
    else:
        recheck = True
        seen = Observation(Phase.PENDING, "StartFailed",
                           f"could not start the run ({reason}); its GPUs are freed and it "
                           "is tried again shortly")
    return Decision(RELEASE, _said(inputs, inputs.spec, seen), job_name=inputs.wanted,
                    recheck=recheck)


def api_message(err: Exception) -> str:
    """The API server's own words from an ApiException's body (its Status message)."""
    body = getattr(err, "body", None) or ""
    try:
        return str(json.loads(body)["message"])[:500]
    except (TypeError, ValueError, KeyError):
        return str(err)[:500]


def _follow(inputs: Inputs, spec: AnimationSpec, job: Obj) -> Decision:
    """4. The Job is suspended or resumed as spec.suspend says (never a Kueue-managed one:
    those are Kueue's to suspend) and its state is the status; a Job whose pod is stuck
    past the pending timeout is deleted; only a Job that may still run holds GPUs."""
    suspend = None
    if (not inputs.kueue and not job_finished(job)
            and bool((job.get("spec") or {}).get("suspend")) != spec.suspend):
        suspend = spec.suspend
        job = {**job, "spec": {**(job.get("spec") or {}), "suspend": spec.suspend}}
    pods = list(inputs.pods)
    seen = observe(job, pods, now=inputs.now,
                   pending_timeout=inputs.settings.pending_timeout_seconds,
                   kueue_managed=inputs.kueue)
    holds = keeps_gpus(job, pods, kueue=inputs.kueue, delete_job=seen.delete_job)
    gpus: GpuChange = (Hold(inputs.animation["metadata"]["namespace"], inputs.gpus)
                       if holds and inputs.gpus else RELEASE)
    return Decision(gpus, _said(inputs, spec, seen), job_name=inputs.wanted, suspend=suspend,
                    delete_job=seen.delete_job)


def _start(inputs: Inputs, spec: AnimationSpec) -> Decision:
    """8. The Job to make. Kueue counts its own quota (no GPUs claimed here) and admits
    the Job by resuming it; otherwise the GPUs the offer granted are claimed first."""
    planned = plan_job(inputs.animation, spec, inputs.settings,
                       memory_fallback=inputs.fallback)
    if inputs.kueue:
        seen = observe(planned, [], now=inputs.now, pending_timeout=KUEUE_PENDING_TIMEOUT,
                       kueue_managed=True)
        return Decision(RELEASE, _said(inputs, spec, seen), job_name=inputs.wanted,
                        start=planned)
    seen = Observation(Phase.PENDING, "JobCreated",
                       f"created Job {inputs.wanted}; waiting for the runner pod")
    if not inputs.gpus:  # a pose preview: a CPU pod, no GPU slot claimed
        return Decision(RELEASE, _said(inputs, spec, seen), job_name=inputs.wanted,
                        start=planned)
    if inputs.offer is None:
        raise ValueError("a start without Kueue needs the queue's offer for its GPUs")
    return Decision(Claim(inputs.offer), _said(inputs, spec, seen), job_name=inputs.wanted,
                    start=planned)


def _said(inputs: Inputs, spec: AnimationSpec, seen: Observation) -> Observation:
    """What the status says of a run: out of GPU memory, the lower-VRAM retry instead
    (its Job starts on the next pass); and always its workers."""
    seen = fallback_for(spec, inputs.settings, inputs.status, inputs.generation, seen) or seen
    return replace(seen, extras={**seen.extras, **workers_status(spec, inputs.settings)})


def _tidy(inputs: Inputs, spec: AnimationSpec, decision: Decision) -> Decision:
    """An accepted spec's housekeeping, whatever else is decided: the finalizer as the spec
    wants it, and the Jobs of earlier generations go (they describe a spec that is gone)."""
    return replace(decision, finalizers=_finalizers(inputs.animation["metadata"], spec),
                   retire=tuple(j for j in inputs.jobs
                                if j["metadata"]["name"] != inputs.wanted))


def _finalizers(meta: Obj, spec: AnimationSpec) -> list[str] | None:
    """The finalizer list when it must change: deletion waits only when there is cleanup
    to do (outputReclaimPolicy Delete)."""
    finalizers = list(meta.get("finalizers") or [])
    wants = spec.output_reclaim_policy == "Delete"
    if wants == (L.OUTPUT_FINALIZER in finalizers):
        return None
    if wants:
        return [*finalizers, L.OUTPUT_FINALIZER]
    finalizers.remove(L.OUTPUT_FINALIZER)
    return finalizers
