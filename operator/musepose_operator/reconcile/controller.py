"""The reconciler: one level-triggered pass per Animation, from the views to the API.

Every watch event on an Animation, its Job or its Pods ends here. A pass is three steps:
1 gather its inputs (the Animation, its Jobs and their Pods from the views, which are
filled before the first pass; the queue's offer for its GPUs; the model files' readiness),
2 decide with one pure function (``reconcile.decide.decide``), 3 apply the decision: the
API calls it names (finalizers, Jobs made, suspended or deleted), the GPUs held or freed
(``GpuSlots.apply``, their one door), and a status write that only lands if the Animation
is still the version read. Re-running it is always safe.

The parts it hands off to: ``slots.GpuSlots`` (GPUs held and the waiting queue, no API
calls), ``status_writer.StatusWriter`` (status, Events, coalescing) and
``outputs.Outputs`` (download links, the finalizer and cleanup after deletion);
``disruptions.Disruptions`` tells each disrupted pod straight from the pod watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from musepose_operator import metrics
from musepose_operator.admission.validation import Rejection, read_spec
from musepose_operator.api import AnimationSpec
from musepose_operator.base import labels as L
from musepose_operator.base.timestamps import now
from musepose_operator.base.types import Obj
from musepose_operator.cluster.kube import Conflict, Kube
from musepose_operator.cluster.watch_cache import Views, key
from musepose_operator.gpus.queueing import Caps, QueueEntry
from musepose_operator.gpus.slots import RELEASE, Claim, GpuChange, GpuSlots
from musepose_operator.planning.fallback import in_fallback
from musepose_operator.planning.parallel import gpus_of
from musepose_operator.planning.reuse import generation_job_name
from musepose_operator.reconcile.decide import Decision, Inputs, decide, start_failed
from musepose_operator.reconcile.disruptions import Disruptions
from musepose_operator.reconcile.job_steps import JobSteps
from musepose_operator.reconcile.output_steps import Outputs
from musepose_operator.reconcile.status_writer import StatusWriter
from musepose_operator.reconcile.timers import OncePerUid
from musepose_operator.reconcile.weights_gate import WeightsGate
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import run_settled

log = logging.getLogger("musepose_operator")
CONFLICT_RETRIES = 3
# Job and Pod events for one Animation within this long make one pass: right after a Job
# is made, it and its pod change half a dozen times in a second (controller-runtime's work
# queue folds events the same way).
FOLD_SECONDS = 0.2


class StaleOffer(Exception):
    """The GPU slots changed between the offer a pass read and its claim (another pass
    took or freed GPUs while this one awaited the API): the pass decides again."""


class Controller:
    def __init__(self, kube: Kube, settings: Settings, views: Views | None = None,
                 namespaces: list[str] | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.views = views or Views()
        self.namespaces = namespaces  # None: every namespace
        self.synced = False  # the Job and Pod views hold what the API had at start
        self.paused = False  # a standby replica under kopf peering: decide nothing
        self.reconciled: set[str] = set()  # uids with a pass that finished, for the probe
        self.failed_passes = 0  # passes that ended in an exception, for the probe
        self._sync_lock = asyncio.Lock()
        self.queue_changed = asyncio.Event()
        self.slots = GpuSlots(Caps(settings.max_concurrent,
                                   settings.max_concurrent_per_namespace),
                              on_change=self.queue_changed.set)
        self.outputs = Outputs(kube, settings)
        self.status = StatusWriter(kube, self.views, self.outputs.link, self._pass_soon)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()  # scheduled passes running
        self._folding = OncePerUid(self._pass_soon)  # a pass after Job and Pod events
        self._places: asyncio.Task[None] | None = None  # the queue-position refresh
        self.jobs = JobSteps(kube, settings, self.views, self.status)
        self.disruptions = Disruptions(self.views, self.status)  # an Event per evicted pod
        self.gauges = metrics.QueueGauges(self.views.phase_counts)
        self.weights = WeightsGate(settings.weights_pull_job, kube.read_job)

    # -- entry points ----------------------------------------------------------------------

    async def sync(self, refresh: bool = False) -> None:
        """Fill the Job and Pod views before the first decision (controller-runtime's
        WaitForCacheSync): an Animation reconciled against an empty view would create its
        Job again and report Pending while its runner is already at work. The watches keep
        the views fresh afterwards; ``refresh`` replaces views that went stale (a standby
        replica taking over)."""
        if self.synced and not refresh:
            return
        async with self._sync_lock:
            if self.synced and not refresh:
                return
            selector = ",".join(f"{k}={v}" for k, v in L.MANAGED_SELECTOR.items())
            jobs, pods = await self.kube.list_jobs_and_pods(self.namespaces, selector)
            self.views.fill(jobs, pods, replace=refresh)
            self.synced = True
            log.info("views filled: %d Jobs, %d Pods", len(jobs), len(pods))

    async def reconcile(self, uid: str) -> None:
        """One pass for ``uid``; only a pass that finished counts as reconciled."""
        if self.paused:
            return
        async with self._locks[uid]:
            try:
                finished = await self._retrying(uid)
            except Exception:
                self.failed_passes += 1
                metrics.PASSES.labels("failed").inc()
                log.exception("reconciling %s failed; the next event or resync retries",
                              key(self.views.animations.get(uid) or {}))
                return
            metrics.PASSES.labels("finished" if finished else "conflicted").inc()
            if finished:
                self.reconciled.add(uid)

    async def _retrying(self, uid: str) -> bool:
        """The pass, again on a conflict; False when the Animation kept changing."""
        await self.sync()
        for _ in range(CONFLICT_RETRIES):
            body = self.views.animations.get(uid)
            if body is None:
                self._gpus(uid, RELEASE)
                return True
            try:
                await self._reconcile(body)
                return True
            except StaleOffer:
                continue  # the views are as fresh as they were: decide on the slots as now
            except Conflict:
                # Someone wrote since our copy was made: re-read, decide again.
                if not await self._reread(uid, body):
                    return True
        log.info("%s kept changing while reconciling; the next event retries",
                 key(self.views.animations.get(uid) or {}))
        return False

    def soon(self, uid: str) -> None:
        """A pass for ``uid`` in FOLD_SECONDS, however many Job and Pod events arrive for it
        meanwhile (the views already hold them: the pass decides on the latest)."""
        self._folding.schedule(uid, FOLD_SECONDS)

    def _pass_soon(self, uid: str) -> None:
        self._spawn(self.reconcile(uid))

    def forget(self, uid: str) -> None:
        self.reconciled.discard(uid)
        self.views.drop_animation(uid)
        self._gpus(uid, RELEASE)
        self._locks.pop(uid, None)
        self.status.forget(uid)
        self._folding.cancel(uid)
        self.weights.forget(uid)

    async def resync_queue(self) -> None:
        """Start whatever the queue now admits, and refresh queue positions in the
        background: with a deep queue those passes write hundreds of statuses, and slots
        freed meanwhile must not wait for them (the scale bench's GPUs sat idle)."""
        for entry in self.slots.admissible():
            await self.reconcile(entry.uid)
        if self._places is None or self._places.done():
            self._places = asyncio.get_running_loop().create_task(self._refresh_places())
        self._update_gauges()

    async def _refresh_places(self) -> None:
        for uid in list(self.slots.waiting):
            await self.reconcile(uid)

    def stop(self) -> None:
        """Cancel the background passes (operator shutdown)."""
        self.status.stop()
        self._folding.stop()
        self.weights.stop()
        for task in [self._places, *self._tasks]:
            if task is not None:
                task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reread(self, uid: str, body: Obj) -> bool:
        meta = body["metadata"]
        fresh = await self.kube.read_animation(meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("uid") != uid:
            self.views.drop_animation(uid)
            self._gpus(uid, RELEASE)
            return False
        self.views.put_animation(fresh)
        return True

    # -- the pass: 1 gather, 2 decide, 3 apply ---------------------------------------------

    async def _reconcile(self, body: Obj) -> None:
        """One pass: 1 gather (reads only), 2 decide (pure, ``reconcile.decide``), 3 apply
        (API calls only, each for a change the decision names)."""
        inputs = await self._gather(body)  # 1
        decision = decide(inputs)  # 2
        await self._apply(inputs, decision)  # 3

    async def _gather(self, body: Obj) -> Inputs:
        """Step 1: what the decision needs, read and nothing decided: the spec as it may run
        (or why not), the Animation's Jobs and this generation's Job's pods from the views,
        and, for a run that may start, the model files' readiness and the queue's offer."""
        meta = body["metadata"]
        spec = read_spec(body.get("spec"), self.settings, meta["namespace"])
        if meta.get("deletionTimestamp") or isinstance(spec, Rejection):
            return Inputs(body, spec, self.settings, now())
        return await self._gather_run(body, spec)

    async def _gather_run(self, body: Obj, spec: AnimationSpec) -> Inputs:
        """Step 1 for an accepted spec."""
        meta = body["metadata"]
        status = body.get("status") or {}
        generation = int(meta.get("generation") or 1)
        fallback = in_fallback(status, generation)
        kueue = bool(spec.queue_name or self.settings.default_queue_name)
        jobs = self.views.jobs_of(meta["uid"])  # read (decoded) once for the whole pass
        wanted = generation_job_name(body, spec, self.settings, jobs,
                                     memory_fallback=fallback)
        job = next((j for j in jobs if j["metadata"]["name"] == wanted), None)
        gpus = gpus_of(spec, self.settings)
        may_start = job is None and not spec.suspend and not run_settled(status, generation)
        weights_waiting = None
        if may_start and self.weights.enabled:
            readiness = await self.weights.check(meta["namespace"])
            weights_waiting = None if readiness.ready else readiness.message
        offer = None
        if may_start and not kueue and gpus:  # a pose preview (0 GPUs) asks for no slot
            offer = self.slots.offer(QueueEntry.of(
                uid=meta["uid"], namespace=meta["namespace"], name=meta["name"],
                priority=spec.priority, created=meta.get("creationTimestamp") or "",
                gpus=gpus))
        return Inputs(body, spec, self.settings, now(), kueue=kueue, fallback=fallback,
                      jobs=tuple(jobs), wanted=wanted,
                      pods=tuple(self.views.pods_of(job)) if job else (), gpus=gpus,
                      offer=offer, weights_waiting=weights_waiting)

    async def _apply(self, inputs: Inputs, decision: Decision) -> None:
        """Step 3: the decision's calls, in its order; each step only when it changes
        something."""
        body, job = inputs.animation, inputs.job
        meta = body["metadata"]
        if decision.finalizers is not None:  # 3.1 deletion waits only for cleanup to do
            await self.kube.patch_animation(meta["namespace"], meta["name"],
                                            {"metadata": {"finalizers": decision.finalizers}})
        await self.jobs.retire(body, decision.retire, inputs.generation)  # 3.2 old Jobs
        if decision.suspend is not None and job is not None:  # 3.3 spec.suspend edited
            await self.jobs.set_suspend(body, job, decision.suspend)
        if decision.delete_job and job is not None:  # 3.4 stuck past the timeout
            await self.jobs.delete(job)
        if not self._gpus(meta["uid"], decision.gpus):  # 3.5 GPUs held, claimed or freed
            raise StaleOffer(meta["uid"])
        if decision.finalize:  # 3.6 deleted: its outputs' cleanup, then the finalizer
            await self.outputs.finalize(body)
        if decision.start is not None:  # 3.7 the run's Secret, Service and Job
            follow_up = await self._start(inputs, decision, decision.start)
            if follow_up is not None:
                await self._apply(*follow_up)  # what the start found: this step again
                return
        if decision.recheck:  # 3.8 a look again shortly, on its per-uid timer
            self.weights.recheck_later(meta["uid"], self._pass_soon)
        if decision.status is not None:  # 3.9 written only if changed (plan_write)
            await self.status.write(body, inputs.status, inputs.generation, decision.status,
                                    decision.job_name, rejected=decision.rejected)

    def _gpus(self, uid: str, change: GpuChange) -> bool:
        """The one place GPUs are held, claimed or freed; False when a claim's offer went
        stale."""
        applied = self.slots.apply(uid, change)
        if isinstance(change, Claim) and not change.offer.granted:
            self._update_gauges()  # one more waits in the queue
        return applied

    async def _start(self, inputs: Inputs, decision: Decision, planned: Obj
                     ) -> tuple[Inputs, Decision] | None:
        """Make the run's objects. None when made; otherwise what to apply instead: a
        failed start frees the GPUs and says why; a Job that exists already (made just
        before a restart, its event still in flight) is read and decided on as it is,
        never as "just created"."""
        body = inputs.animation
        try:
            made = await self.jobs.start(body, planned)
            found = None if made is not None else await self.jobs.adopt(
                body["metadata"], planned["metadata"]["name"])
        except Exception as err:  # noqa: BLE001 - any failure after the claim frees it
            log.warning("starting %s failed: %s", key(body), err)
            return inputs, start_failed(inputs, err)
        if made is not None:
            return None
        if found is None:  # gone again meanwhile: nothing to say; its events bring a pass
            return inputs, Decision(decision.gpus)
        meta = body["metadata"]
        if decision.finalizers is not None:  # already written
            body = {**body, "metadata": {**meta, "finalizers": decision.finalizers}}
        found_inputs = replace(inputs, animation=body, jobs=(found,),
                               pods=tuple(self.views.pods_of(found)), offer=None)
        return found_inputs, decide(found_inputs)

    def _update_gauges(self) -> None:
        self.gauges.update(len(self.slots.waiting), self.slots.holders)

