"""The reconciler: one level-triggered pass per Animation, from the Store to the API.

Every watch event on an Animation, its Job or its Pods ends here. A pass, like a
kubebuilder reconciler, observes (the Animation, its Job and the Job's Pods from the Store,
which is filled before the first pass), decides with pure functions (planning, status
mapping, ``status.transitions.settle``) and acts: at most the one change it calls for
(create, suspend or delete a Job), an Event for a status transition, and a status write
that only lands if the Animation is still the version read. Re-running it is always safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from musepose_operator import labels as L
from musepose_operator import metrics, reclaim
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.fallback import fallback_for, in_fallback
from musepose_operator.kube import Conflict, Kube
from musepose_operator.planning import job_name, plan_job
from musepose_operator.planning.job import checkpoint_location, output_location
from musepose_operator.planning.reuse import runs_the_same
from musepose_operator.queueing import Caps, QueueEntry, WaitingQueue, admit_in_order
from musepose_operator.settings import Settings
from musepose_operator.status.document import (
    coalescing_window,
    routine_change,
    same_status,
    status_document,
)
from musepose_operator.status.mapping import Observation, observe, runner_done
from musepose_operator.status.transitions import announcement, event_name, settle
from musepose_operator.storage import ObjectStore
from musepose_operator.store import Store, key
from musepose_operator.tenancy import within, write_prefixes
from musepose_operator.validation import Rejection, check_spec

log = logging.getLogger("musepose_operator")
Obj = dict[str, Any]
CONFLICT_RETRIES = 3
GAUGE_SECONDS = 1.0
# Job and Pod events for one Animation within this long make one pass: right after a Job
# is made, it and its pod change half a dozen times in a second (controller-runtime's work
# queue folds events the same way).
FOLD_SECONDS = 0.2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished(status: Obj, generation: int) -> bool:
    return (status.get("observedGeneration") == generation
            and status.get("phase") in (Phase.SUCCEEDED, Phase.FAILED))


def _job_finished(job: Obj) -> bool:
    return any(c.get("status") == "True" and c.get("type") in
               ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
               for c in (job.get("status") or {}).get("conditions") or [])


class Controller:
    def __init__(self, kube: Kube, settings: Settings, store: Store | None = None,
                 namespaces: list[str] | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.store = store or Store()
        self.namespaces = namespaces  # None: every namespace
        self.synced = False  # the Job and Pod views hold what the API had at start
        self.paused = False  # a standby replica under kopf peering: decide nothing
        self.reconciled: set[str] = set()  # uids with a finished pass, for the probe
        self._sync_lock = asyncio.Lock()
        self.caps = Caps(settings.max_concurrent, settings.max_concurrent_per_namespace)
        self.waiting = WaitingQueue()  # Animations without a slot, in queue order
        self.holding: dict[str, str] = {}  # Animation uid → namespace, Jobs holding a slot
        self.queue_changed = asyncio.Event()
        # Who may start, computed once per change of waiting/holding: a resync reconciles
        # every waiting Animation (bench/operator_bench.py).
        self._queue_view: set[str] | None = None
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._objects: ObjectStore | None = None
        self._written: dict[str, float] = {}  # uid → monotonic time of its last status write
        self._deferred: dict[str, asyncio.TimerHandle] = {}  # uid → its coalesced pass
        self._tasks: set[asyncio.Task[None]] = set()  # deferred passes running
        self._folding: dict[str, asyncio.TimerHandle] = {}  # uid → its pass after events
        self._places: asyncio.Task[None] | None = None  # the queue-position refresh
        self._phases_counted = 0.0  # monotonic time the phase gauges were last counted

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
            if refresh:
                for old_job in list(self.store.jobs.values()):
                    self.store.drop_job(old_job)
                for old_pod in list(self.store.pods.values()):
                    self.store.drop_pod(old_pod)
            for job in jobs:  # what a watch already delivered is as new or newer: keep it
                if key(job) not in self.store.jobs:
                    self.store.put_job(job)
            for pod in pods:
                if key(pod) not in self.store.pods:
                    self.store.put_pod(pod)
            self.synced = True
            log.info("views filled: %d Jobs, %d Pods", len(jobs), len(pods))

    async def reconcile(self, uid: str) -> None:
        if self.paused:
            return
        async with self._locks[uid]:
            try:
                await self.sync()
                for _ in range(CONFLICT_RETRIES):
                    body = self.store.animations.get(uid)
                    if body is None:
                        self._release(uid)
                        return
                    try:
                        await self._reconcile(uid, body)
                        return
                    except Conflict:
                        # Someone wrote since our copy was made: re-read, decide again.
                        if not await self._reread(uid, body):
                            return
                log.info("%s kept changing while reconciling; the next event retries",
                         key(self.store.animations.get(uid) or {}))
            except Exception:
                log.exception("reconciling %s failed; the next event or resync retries",
                              key(self.store.animations.get(uid) or {}))
            finally:
                self.reconciled.add(uid)

    def soon(self, uid: str) -> None:
        """A pass for ``uid`` in FOLD_SECONDS, however many Job and Pod events arrive for it
        meanwhile (the views already hold them: the pass decides on the latest)."""
        if uid not in self._folding:
            self._folding[uid] = asyncio.get_running_loop().call_later(
                FOLD_SECONDS, self._folded_pass, uid)

    def _folded_pass(self, uid: str) -> None:
        self._folding.pop(uid, None)
        self._spawn(self.reconcile(uid))

    def forget(self, uid: str) -> None:
        self.reconciled.discard(uid)
        self.store.drop_animation(uid)
        self._release(uid)
        self._locks.pop(uid, None)
        self._written.pop(uid, None)
        for timers in (self._deferred, self._folding):
            timer = timers.pop(uid, None)
            if timer is not None:
                timer.cancel()

    async def resync_queue(self) -> None:
        """Start whatever the queue now admits, and refresh queue positions in the
        background: with a deep queue those passes write hundreds of statuses, and slots
        freed meanwhile must not wait for them (the scale bench's GPUs sat idle)."""
        for entry in admit_in_order(list(self.waiting.ordered()), self.holding.values(),
                                    self.caps):
            await self.reconcile(entry.uid)
        if self._places is None or self._places.done():
            self._places = asyncio.get_running_loop().create_task(self._refresh_places())
        self._update_gauges()

    async def _refresh_places(self) -> None:
        for uid in list(self.waiting):
            await self.reconcile(uid)

    def stop(self) -> None:
        """Cancel the background passes (operator shutdown)."""
        for handle in [*self._deferred.values(), *self._folding.values()]:
            handle.cancel()
        for task in [self._places, *self._tasks]:
            if task is not None:
                task.cancel()

    async def _reread(self, uid: str, body: Obj) -> bool:
        meta = body["metadata"]
        fresh = await self.kube.read_animation(meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("uid") != uid:
            self.store.drop_animation(uid)
            self._release(uid)
            return False
        self.store.put_animation(fresh)
        return True

    # -- the pass: observe → decide → act --------------------------------------------------

    async def _reconcile(self, uid: str, body: Obj) -> None:
        meta = body["metadata"]
        name = meta["name"]
        generation = int(meta.get("generation") or 1)
        status: Obj = dict(body.get("status") or {})

        if meta.get("deletionTimestamp"):
            await self._finalize(body)
            return
        spec = await self._accepted_spec(body, status)
        if spec is None:
            return
        await self._sync_finalizer(body, spec)

        fallback = in_fallback(status, generation)
        wanted = job_name(name, uid, generation, memory_fallback=fallback)
        jobs = self.store.jobs_of(uid)  # read (decoded) once for the whole pass
        if jobs and all(j["metadata"]["name"] != wanted for j in jobs):
            # An edit the run never sees (spec.suspend above all) keeps the Job it has.
            planned = plan_job(body, spec, self.settings, memory_fallback=fallback)
            wanted = next((j["metadata"]["name"] for j in jobs
                           if runs_the_same(j, planned)), wanted)
        await self._retire_old_jobs(body, jobs, wanted, generation)
        job = next((j for j in jobs if j["metadata"]["name"] == wanted), None)
        if _finished(status, generation) and (job is None or _job_finished(job)):
            self._release(uid)  # this generation's run is over and its status says so
            return

        kueue = bool(spec.queue_name or self.settings.default_queue_name)
        if job is None:
            seen = await self._start(body, spec, uid, wanted, kueue, fallback)
        else:
            seen = await self._follow(body, spec, job, kueue)
        if seen is not None:
            # Out of GPU memory: one lower-VRAM retry (its Job starts on the next pass).
            seen = fallback_for(spec, self.settings, status, generation, seen) or seen
            await self._write(body, status, generation, seen, wanted)

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

    async def _retire_old_jobs(self, body: Obj, jobs: list[Obj], wanted: str, generation: int
                               ) -> None:
        """Jobs of earlier generations (among the Animation's ``jobs``) describe a spec
        that no longer exists."""
        namespace = body["metadata"]["namespace"]
        for old in jobs:
            old_name = old["metadata"]["name"]
            if old_name == wanted:
                continue
            log.info("deleting %s: Animation %s is now generation %d", key(old), key(body),
                     generation)
            await self.kube.delete_job(namespace, old_name)
            self.store.drop_job(old)
            await self._event(body, "Normal", "SpecChanged",
                              f"spec changed: replacing Job {old_name}", generation)

    async def _start(self, body: Obj, spec: AnimationSpec, uid: str, wanted: str,
                     kueue: bool, memory_fallback: bool = False) -> Observation | None:
        meta = body["metadata"]
        if spec.suspend:
            self._release(uid)
            return Observation(Phase.SUSPENDED, "Suspended",
                               "suspended before starting: set spec.suspend to false to run")
        if not kueue and not self._admitted(uid, body, spec):
            place = self.waiting.place(uid)
            return Observation(
                Phase.QUEUED, "WaitingForCapacity",
                f"waiting for a free slot: number {place} in the queue",
                extras={"queuePosition": place})
        created = await self.kube.create_job(
            plan_job(body, spec, self.settings, memory_fallback=memory_fallback))
        if created is None:
            # It exists though the view lacks it (made just before a restart, its event
            # still in flight): decide from the Job and its pods as they are, never from
            # "just created".
            job = await self._adopt(meta["namespace"], wanted)
            return None if job is None else await self._follow(body, spec, job, kueue)
        created_at = dt.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
        metrics.CREATE_TO_JOB.observe(max(0.0, (_now() - created_at).total_seconds()))
        self.store.put_job(created)
        if kueue:
            return observe(created, [], now=_now(), pending_timeout=1e9, kueue_managed=True)
        return Observation(Phase.PENDING, "JobCreated", f"created Job {wanted}; waiting for "
                           "the runner pod")

    async def _adopt(self, namespace: str, name: str) -> Obj | None:
        """Read an existing Job and its pods into the views."""
        job = await self.kube.read_job(namespace, name)
        if job is None:
            return None
        self.store.put_job(job)
        for pod in await self.kube.pods_of_job(namespace, name):
            self.store.put_pod(pod)
        return job

    async def _follow(self, body: Obj, spec: AnimationSpec, job: Obj,
                      kueue: bool) -> Observation:
        uid = body["metadata"]["uid"]
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        finished = _job_finished(job)
        if not kueue and not finished:
            suspended = bool((job.get("spec") or {}).get("suspend"))
            if suspended != spec.suspend:
                # Kueue-managed Jobs are Kueue's to suspend; never flip those.
                await self.kube.patch_job(namespace, name, {"spec": {"suspend": spec.suspend}})
                job = {**job, "spec": {**(job.get("spec") or {}), "suspend": spec.suspend}}
                verb = "suspended" if spec.suspend else "resumed"
                await self._event(body, "Normal", verb.capitalize(), f"{verb} Job {name}",
                                  body["metadata"].get("resourceVersion"))
        pods = self.store.pods_of(job)
        if finished or (job.get("spec") or {}).get("suspend") or kueue or runner_done(pods):
            self._release(uid)
        else:
            self._hold(uid, namespace)
        observation = observe(job, pods, now=_now(),
                              pending_timeout=self.settings.pending_timeout_seconds,
                              kueue_managed=kueue)
        if observation.delete_job:
            await self.kube.delete_job(namespace, name)
            self._release(uid)
        return observation

    # -- status ----------------------------------------------------------------------------

    async def _write(self, body: Obj, status: Obj, generation: int, seen: Observation,
                     wanted_job: str | None, rejected: Rejection | None = None) -> None:
        """Settle the snapshot against the status read, announce a transition, and write
        only if the Animation is still the version read (Conflict otherwise)."""
        meta = body["metadata"]
        settled = settle(status, generation, seen)
        if settled is None:
            return
        new = status_document(
            status, generation, settled, job_name=wanted_job,
            output=self._output(body, settled), now=_stamp(_now()),
            rejected=(rejected.reason, rejected.message) if rejected else None)
        if same_status(status, new):
            return
        told = announcement(status, new)
        if told is None and routine_change(status, new):
            return  # said with the next change that matters
        if told is None and self._coalesced(meta["uid"], coalescing_window(new)):
            return
        if told is not None:
            # Before the write: the Event's name is fixed by the transition, so a pass that
            # repeats it after a crash or a conflict finds it made (409) instead of doubling.
            await self._announce(body, generation, settled, told)
        read_version = meta.get("resourceVersion")
        reply = await self.kube.patch_animation_status(meta["namespace"], meta["name"], new,
                                                       read_version)
        self.store.replace_animation(reply, read_version)
        self._written[meta["uid"]] = time.monotonic()

    def _coalesced(self, uid: str, window: float) -> bool:
        """Whether a change within one step waits for a pass later (scheduled here)."""
        last = self._written.get(uid)
        wait = 0.0 if last is None else last + window - time.monotonic()
        if wait <= 0:
            return False
        if uid not in self._deferred:
            self._deferred[uid] = asyncio.get_running_loop().call_later(
                wait, self._deferred_pass, uid)
        return True

    def _deferred_pass(self, uid: str) -> None:
        self._deferred.pop(uid, None)
        self._spawn(self.reconcile(uid))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _output(self, body: Obj, seen: Observation) -> Obj | None:
        spec = body.get("spec") or {}
        meta = body["metadata"]
        uri = output_location(self.settings, meta["namespace"], meta["name"], spec.get("output"))
        if seen.output is None:
            return {"uri": uri} if seen.phase is not Phase.FAILED else None
        output = dict(seen.output)
        previous = (body.get("status") or {}).get("output") or {}
        expiry = self.settings.presign_expiry_seconds
        if expiry and str(output.get("uri", "")).startswith("s3://"):
            if previous.get("presignedUrl") and previous.get("sha256") == output.get("sha256"):
                output["presignedUrl"] = previous["presignedUrl"]
                output["presignedUrlExpiresAt"] = previous.get("presignedUrlExpiresAt")
            else:
                try:
                    url, until = self.objects().presign(output["uri"], expiry)
                    output["presignedUrl"], output["presignedUrlExpiresAt"] = url, until
                except Exception as err:  # noqa: BLE001 - a link is a convenience
                    log.warning("could not presign %s: %s", output["uri"], err)
        return output

    async def _announce(self, body: Obj, generation: int, seen: Observation,
                        told: tuple[str, str, str]) -> None:
        kind, reason, message = told
        if seen.phase is Phase.FAILED:
            metrics.FAILURES.labels(seen.reason).inc()
        if seen.phase is Phase.SUCCEEDED and seen.start_time and seen.completion_time:
            started = dt.datetime.fromisoformat(seen.start_time.replace("Z", "+00:00"))
            ended = dt.datetime.fromisoformat(seen.completion_time.replace("Z", "+00:00"))
            metrics.JOB_DURATION.observe(max(0.0, (ended - started).total_seconds()))
        await self._event(body, kind, reason, message, generation, seen.attempts)

    async def _event(self, body: Obj, kind: str, reason: str, message: str,
                     *occasion: Any) -> None:
        """An Event named after what it announces (``occasion``: generation, attempt...)."""
        meta = body["metadata"]
        name = event_name(meta["name"], meta["uid"], *occasion, reason, message)
        await self.kube.event(body, kind, reason, message, name=name)

    async def _reject(self, body: Obj, status: Obj, rejection: Rejection) -> None:
        meta = body["metadata"]
        self._release(meta["uid"])
        seen = Observation(Phase.FAILED, rejection.reason, rejection.message)
        await self._write(body, status, int(meta.get("generation") or 1), seen, None,
                          rejected=rejection)

    # -- queue -----------------------------------------------------------------------------

    def _admitted(self, uid: str, body: Obj, spec: AnimationSpec) -> bool:
        if uid in self.holding:
            return True
        meta = body["metadata"]
        entry = QueueEntry.of(
            uid=uid, namespace=meta["namespace"], name=meta["name"], priority=spec.priority,
            created=meta.get("creationTimestamp") or "")
        if self.waiting.get(uid) != entry:
            self.waiting.put(entry)
            self._queue_view = None
            self.queue_changed.set()  # the others' queue positions move: refresh them soon
        if not self.caps.unlimited and uid not in self._view():
            self._update_gauges()
            return False
        self._hold(uid, meta["namespace"])
        return True

    def _view(self) -> set[str]:
        """The uids the caps admit now, cached until the queue changes."""
        if self._queue_view is None:
            self._queue_view = {e.uid for e in admit_in_order(
                self.waiting.ordered(), self.holding.values(), self.caps)}
        return self._queue_view

    def _hold(self, uid: str, namespace: str) -> None:
        self.waiting.pop(uid)
        self.holding[uid] = namespace
        self._queue_view = None

    def _release(self, uid: str) -> None:
        freed = self.holding.pop(uid, None) is not None
        left = self.waiting.pop(uid) is not None
        if freed or left:
            self._queue_view = None
            self.queue_changed.set()

    def _update_gauges(self) -> None:
        metrics.QUEUE_DEPTH.set(len(self.waiting))
        metrics.RUNNING_JOBS.set(len(self.holding))
        # Counting phases walks every Animation: at most once a second (a burst of 1,000
        # arrivals counted 1,000 times over, an eighth of the operator's CPU).
        now = time.monotonic()
        if now - self._phases_counted < GAUGE_SECONDS:
            return
        self._phases_counted = now
        counts = self.store.phase_counts()
        for phase in Phase:
            metrics.ANIMATIONS.labels(phase.value).set(counts.get(phase.value, 0))

    # -- deletion --------------------------------------------------------------------------

    async def _sync_finalizer(self, body: Obj, spec: AnimationSpec) -> None:
        """Hold deletion only when there is cleanup to do: outputReclaimPolicy Delete."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        wants = spec.output_reclaim_policy == "Delete"
        if wants == (L.OUTPUT_FINALIZER in finalizers):
            return
        if wants:
            finalizers.append(L.OUTPUT_FINALIZER)
        else:
            finalizers.remove(L.OUTPUT_FINALIZER)
        await self.kube.patch_animation(meta["namespace"], meta["name"],
                                        {"metadata": {"finalizers": finalizers}})

    async def _finalize(self, body: Obj) -> None:
        meta = body["metadata"]
        self._release(meta["uid"])
        finalizers = list(meta.get("finalizers") or [])
        if L.OUTPUT_FINALIZER not in finalizers:
            return
        # Only what a successful run wrote, inside the namespace's prefixes, unchanged since.
        plan = reclaim.plan_reclaim(body.get("status") or {}, meta["namespace"], self.settings)
        done = await asyncio.to_thread(
            reclaim.execute, plan, lambda uri, sha: self.objects().delete_if_unchanged(uri, sha))
        deleting_since = dt.datetime.fromisoformat(
            meta["deletionTimestamp"].replace("Z", "+00:00"))
        waited = (_now() - deleting_since).total_seconds()
        if done.retry and waited < self.settings.output_cleanup_give_up_seconds:
            log.warning("output cleanup of %s will be retried: %s", key(body), done.retry)
            return
        await self._drop_checkpoint(body)
        # Named after what they say: a second pass over the same deletion (a watch event
        # that arrived before the finalizer went) finds them made instead of doubling them.
        for problem in done.left + done.retry:
            await self._event(body, "Warning", "OutputNotDeleted", problem, "deletion")
        if done.deleted:
            await self._event(body, "Normal", "OutputDeleted",
                              f"deleted {' and '.join(done.deleted)}", "deletion")
        finalizers.remove(L.OUTPUT_FINALIZER)
        await self.kube.patch_animation(meta["namespace"], meta["name"],
                                        {"metadata": {"finalizers": finalizers}})

    async def _drop_checkpoint(self, body: Obj) -> None:
        """A run that never finished may have left a checkpoint beside its output."""
        meta = body["metadata"]
        output = output_location(self.settings, meta["namespace"], meta["name"],
                                 (body.get("spec") or {}).get("output"))
        location = checkpoint_location(output, meta["uid"])
        if not self.settings.checkpoints.enabled or not location.startswith("s3://"):
            return
        if not within(location, write_prefixes(self.settings, meta["namespace"])):
            return  # never outside the namespace's own prefixes, whatever the spec says
        try:
            await asyncio.to_thread(self.objects().delete, location)
        except Exception as err:  # noqa: BLE001 - a leftover checkpoint costs only space
            log.warning("checkpoint %s of %s not deleted: %s", location, key(body), err)

    def objects(self) -> ObjectStore:
        if self._objects is None:
            self._objects = ObjectStore(self.settings.s3)
        return self._objects

