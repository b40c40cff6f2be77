"""The reconciler: one level-triggered pass per Animation, from the views to the API.

Every watch event on an Animation, its Job or its Pods ends here. A pass, like a
kubebuilder reconciler, observes (the Animation, its Job and the Job's Pods from the views,
which is filled before the first pass), decides with pure functions (planning, status
mapping, ``slots.keeps_gpus``, ``status.writes.plan_write``) and acts: at most the one
change it calls for (create, suspend or delete a Job), an Event for a status transition,
and a status write that only lands if the Animation is still the version read. Re-running
it is always safe.

The parts it hands off to: ``slots.GpuSlots`` (GPUs held and the waiting queue, no API
calls), ``status_writer.StatusWriter`` (status, Events, coalescing) and
``outputs.Outputs`` (download links, the finalizer and cleanup after deletion);
``disruptions.Disruptions`` tells each disrupted pod straight from the pod watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from musepose_operator import metrics
from musepose_operator.admission.validation import Rejection, check_spec
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.base import labels as L
from musepose_operator.cluster.kube import Conflict, Kube
from musepose_operator.cluster.watch_cache import Views, key
from musepose_operator.gpus.queueing import Caps, QueueEntry
from musepose_operator.gpus.slots import GpuSlots, job_finished, keeps_gpus
from musepose_operator.planning.fallback import fallback_for, in_fallback
from musepose_operator.planning.parallel import gpus_of, waiting_message, workers_status
from musepose_operator.reconcile.disruptions import Disruptions
from musepose_operator.reconcile.job_steps import JobSteps, NotOurs
from musepose_operator.reconcile.output_steps import Outputs
from musepose_operator.reconcile.status_writer import StatusWriter
from musepose_operator.reconcile.timers import OncePerUid
from musepose_operator.reconcile.weights_gate import WAITING_REASON, WeightsGate
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation, run_settled

log = logging.getLogger("musepose_operator")
Obj = dict[str, Any]
CONFLICT_RETRIES = 3
# Job and Pod events for one Animation within this long make one pass: right after a Job
# is made, it and its pod change half a dozen times in a second (controller-runtime's work
# queue folds events the same way).
FOLD_SECONDS = 0.2


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
                self.slots.release(uid)
                return True
            try:
                await self._reconcile(uid, body)
                return True
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
        self.slots.release(uid)
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
            self.slots.release(uid)
            return False
        self.views.put_animation(fresh)
        return True

    # -- the pass: observe → decide → act --------------------------------------------------

    async def _reconcile(self, uid: str, body: Obj) -> None:
        """1 deleted: clean up; 2 accept the spec or say why not; 3 the finalizer;
        4 this generation's Job (earlier ones go); 5 start or follow it; 6 write the
        status."""
        meta = body["metadata"]
        generation = int(meta.get("generation") or 1)
        status: Obj = dict(body.get("status") or {})
        if meta.get("deletionTimestamp"):
            self._occupy(body, None)
            await self.outputs.finalize(body)
            return
        spec = await self._accepted_spec(body, status)
        if spec is None:
            return
        await self.outputs.sync_finalizer(body, spec)
        fallback = in_fallback(status, generation)
        job, wanted = await self.jobs.current(body, spec, generation, fallback)
        if run_settled(status, generation) and (job is None or job_finished(job)):
            self._occupy(body, job)  # this generation's run is over and its status says so
            return
        kueue = bool(spec.queue_name or self.settings.default_queue_name)
        seen = await self._run(body, spec, job, wanted, kueue, fallback)
        if seen is not None:
            # Out of GPU memory: one lower-VRAM retry (its Job starts on the next pass).
            seen = fallback_for(spec, self.settings, status, generation, seen) or seen
            seen = replace(seen, extras={**seen.extras,
                                         **workers_status(spec, self.settings)})
            await self.status.write(body, status, generation, seen, wanted)

    def _occupy(self, body: Obj, job: Obj | None, pods: list[Obj] | None = None, *,
                kueue: bool = False, delete_job: bool = False, gpus: int = 1) -> None:
        """Hold or free the Animation's ``gpus`` GPUs as ``slots.keeps_gpus`` decides."""
        meta = body["metadata"]
        if keeps_gpus(job, pods or [], kueue=kueue, delete_job=delete_job):
            self.slots.hold(meta["uid"], meta["namespace"], gpus)
        else:
            self.slots.release(meta["uid"])

    async def _accepted_spec(self, body: Obj, status: Obj) -> AnimationSpec | None:
        """The spec when it can run; otherwise the rejection is written and None returned."""
        namespace = body["metadata"]["namespace"]
        try:
            spec = AnimationSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            await self._reject(body, status, Rejection("InvalidSpec", f"{where}: {first['msg']}"))
            return None
        rejection = check_spec(spec, self.settings, namespace)
        if rejection:
            await self._reject(body, status, rejection)
            return None
        return spec

    async def _reject(self, body: Obj, status: Obj, rejection: Rejection) -> None:
        self._occupy(body, None)
        seen = Observation(Phase.FAILED, rejection.reason, rejection.message)
        await self.status.write(body, status, int(body["metadata"].get("generation") or 1),
                                seen, None, rejected=rejection)

    async def _run(self, body: Obj, spec: AnimationSpec, job: Obj | None, wanted: str,
                   kueue: bool, fallback: bool) -> Observation | None:
        """Start this generation's Job or follow it, and hold or free its GPUs as seen."""
        if job is None:
            if spec.suspend:
                self._occupy(body, None)
                return Observation(Phase.SUSPENDED, "Suspended", "suspended before "
                                   "starting: set spec.suspend to false to run")
            meta = body["metadata"]
            waiting = await self.weights.waiting(meta["namespace"], meta["uid"], self._pass_soon)
            if waiting is not None:  # no runner Job before the weights pull completed
                self._occupy(body, None)
                return Observation(Phase.PENDING, WAITING_REASON, waiting.message)
            if not kueue and not self._claim(body, spec):
                place = self.slots.position(meta["uid"])
                return Observation(
                    Phase.QUEUED, "WaitingForCapacity",
                    waiting_message(gpus_of(spec, self.settings),
                                    self.slots.free(meta["namespace"]), place),
                    extras={"queuePosition": place})
            try:
                run = await self.jobs.start(body, spec, wanted, kueue, fallback)
            except Exception as err:  # noqa: BLE001 - any failure after the claim frees it
                return self._start_failed(body, err)
        else:
            run = await self.jobs.follow(body, spec, job, kueue)
        if run.job is not None:
            self._occupy(body, run.job, run.pods, kueue=kueue,
                         delete_job=run.seen is not None and run.seen.delete_job,
                         gpus=gpus_of(spec, self.settings))
        return run.seen

    def _start_failed(self, body: Obj, err: Exception) -> Observation:
        """All or nothing: a start that failed after the claim (the key Secret, the
        Service or the Job refused) frees the GPUs at once and says why. A name taken by
        someone else's object or a request the API server refuses as invalid will not
        succeed on retry; anything else is tried again by a later pass."""
        meta = body["metadata"]
        self.slots.release(meta["uid"])
        log.warning("starting %s failed: %s", key(body), err)
        if isinstance(err, NotOurs):
            return Observation(Phase.FAILED, "NameTaken", str(err))
        status = getattr(err, "status", None)
        reason = getattr(err, "reason", None) or type(err).__name__
        if isinstance(status, int) and 400 <= status < 500 and status not in (409, 429):
            return Observation(Phase.FAILED, "StartRefused",
                               f"the API server refused the run's objects ({status} "
                               f"{reason}): {_api_message(err)}")
        self.weights.recheck_later(meta["uid"], self._pass_soon)  # its per-uid timer
        return Observation(Phase.PENDING, "StartFailed",
                           f"could not start the run ({reason}); its GPUs are freed and it "
                           "is tried again shortly")

    def _claim(self, body: Obj, spec: AnimationSpec) -> bool:
        """Whether the Animation holds its GPUs (else it waits in the queue)."""
        meta = body["metadata"]
        if self.slots.claim(QueueEntry.of(
                uid=meta["uid"], namespace=meta["namespace"], name=meta["name"],
                priority=spec.priority, created=meta.get("creationTimestamp") or "",
                gpus=gpus_of(spec, self.settings))):
            return True
        self._update_gauges()
        return False

    def _update_gauges(self) -> None:
        self.gauges.update(len(self.slots.waiting), self.slots.holders)


def _api_message(err: Exception) -> str:
    """The API server's own words from an ApiException's body (its Status message)."""
    body = getattr(err, "body", None) or ""
    try:
        return str(json.loads(body)["message"])[:500]
    except (TypeError, ValueError, KeyError):
        return str(err)[:500]
