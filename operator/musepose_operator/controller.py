"""The reconciler: one level-triggered pass per Animation, from the Store to the API.

Every watch event on an Animation, its Job or its Pods ends here. A pass reads the current
state, makes at most the one change it calls for (create, suspend or delete a Job) and
writes the status only when it differs, so re-running it is always safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from musepose_operator import labels as L
from musepose_operator import metrics, reclaim
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.kube import Kube
from musepose_operator.planning import job_name, plan_job
from musepose_operator.planning.job import default_output
from musepose_operator.queueing import Caps, QueueEntry, admit, positions
from musepose_operator.settings import Settings
from musepose_operator.status.conditions import desired_conditions, merge_conditions
from musepose_operator.status.mapping import Observation, observe
from musepose_operator.storage import ObjectStore
from musepose_operator.store import Store, key
from musepose_operator.validation import Rejection, check_spec

log = logging.getLogger("musepose_operator")
Obj = dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _job_finished(job: Obj) -> bool:
    return any(c.get("status") == "True" and c.get("type") in
               ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
               for c in (job.get("status") or {}).get("conditions") or [])


class Controller:
    def __init__(self, kube: Kube, settings: Settings, store: Store | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.store = store or Store()
        self.caps = Caps(settings.max_concurrent, settings.max_concurrent_per_namespace)
        self.waiting: dict[str, QueueEntry] = {}  # uid → entry, Animations without a slot
        self.holding: dict[str, str] = {}  # Animation uid → namespace, Jobs holding a slot
        self.queue_changed = asyncio.Event()
        # Who may start and everyone's place, computed once per change of waiting/holding:
        # a resync reconciles every waiting Animation, and sorting the queue for each of
        # them made a pass quadratic (bench/operator_bench.py).
        self._queue_view: tuple[set[str], dict[str, int]] | None = None
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._objects: ObjectStore | None = None

    # -- entry points ----------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        async with self._locks[uid]:
            body = self.store.animations.get(uid)
            if body is None:
                self._release(uid)
                return
            try:
                await self._reconcile(uid, body)
            except Exception:
                log.exception("reconciling %s failed; the next event or resync retries", key(body))

    def forget(self, uid: str) -> None:
        self.store.drop_animation(uid)
        self._release(uid)
        self._locks.pop(uid, None)

    async def resync_queue(self) -> None:
        """Start whatever the queue now admits and refresh queue positions."""
        for entry in admit(self.waiting.values(), self.holding.values(), self.caps):
            await self.reconcile(entry.uid)
        for uid in list(self.waiting):
            await self.reconcile(uid)
        self._update_gauges()

    # -- the pass --------------------------------------------------------------------------

    async def _reconcile(self, uid: str, body: Obj) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        generation = int(meta.get("generation") or 1)
        status: Obj = dict(body.get("status") or {})

        if meta.get("deletionTimestamp"):
            await self._finalize(body)
            return
        try:
            spec = AnimationSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "spec"
            await self._reject(body, status, Rejection("InvalidSpec", f"{where}: {first['msg']}"))
            return
        rejection = check_spec(spec, self.settings, namespace)
        if rejection:
            await self._reject(body, status, rejection)
            return
        await self._sync_finalizer(body, spec)

        wanted = job_name(name, uid, generation)
        for old in self.store.jobs_of(uid):
            if old["metadata"]["name"] != wanted:
                log.info("deleting %s: Animation %s/%s is now generation %d", key(old),
                         namespace, name, generation)
                await self.kube.delete_job(namespace, old["metadata"]["name"])
                self.store.drop_job(old)
                await self.kube.event(body, "Normal", "SpecChanged",
                                      f"spec changed: replacing Job {old['metadata']['name']}")
        job = self.store.jobs.get(f"{namespace}/{wanted}")
        terminal_now = (status.get("observedGeneration") == generation
                        and status.get("phase") in (Phase.SUCCEEDED, Phase.FAILED))
        if terminal_now and (job is None or _job_finished(job)):
            self._release(uid)
            return

        kueue = bool(spec.queue_name or self.settings.default_queue_name)
        if job is None:
            observation = await self._start(body, spec, uid, wanted, kueue)
        else:
            observation = await self._follow(body, spec, job, kueue)
        if observation is not None:
            await self._write(body, status, generation, observation, wanted)

    async def _start(self, body: Obj, spec: AnimationSpec, uid: str, wanted: str,
                     kueue: bool) -> Observation | None:
        meta = body["metadata"]
        if spec.suspend:
            self._release(uid)
            return Observation(Phase.SUSPENDED, "Suspended",
                               "suspended before starting: set spec.suspend to false to run")
        if not kueue and not self._admitted(uid, body, spec):
            place = self._view()[1].get(uid, 0)
            return Observation(
                Phase.QUEUED, "WaitingForCapacity",
                f"waiting for a free slot: number {place} in the queue",
                extras={"queuePosition": place})
        job = plan_job(body, spec, self.settings)
        created = await self.kube.create_job(job)
        if created is None:  # it exists: a previous run of this pass, or a restart, made it
            created = await self.kube.read_job(meta["namespace"], wanted)
            if created is None:
                return None
        else:
            created_at = dt.datetime.fromisoformat(
                meta["creationTimestamp"].replace("Z", "+00:00"))
            metrics.CREATE_TO_JOB.observe(max(0.0, (_now() - created_at).total_seconds()))
            await self.kube.event(body, "Normal", "JobCreated", f"created Job {wanted}")
        self.store.put_job(created)
        if kueue:
            return observe(created, [], now=_now(), pending_timeout=1e9, kueue_managed=True)
        return Observation(Phase.PENDING, "JobCreated", f"created Job {wanted}; waiting for "
                           "the runner pod")

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
                await self.kube.event(body, "Normal", verb.capitalize(), f"{verb} Job {name}")
        if finished or (job.get("spec") or {}).get("suspend") or kueue:
            self._release(uid)
        else:
            self._hold(uid, namespace)
        observation = observe(job, self.store.pods_of(job), now=_now(),
                              pending_timeout=self.settings.pending_timeout_seconds,
                              kueue_managed=kueue)
        if observation.delete_job:
            await self.kube.delete_job(namespace, name)
            self._release(uid)
        return observation

    # -- status ----------------------------------------------------------------------------

    async def _write(self, body: Obj, status: Obj, generation: int, seen: Observation,
                     wanted_job: str | None, accepted: Rejection | None = None) -> None:
        meta = body["metadata"]
        now = _now()
        old_phase = status.get("phase")
        conditions = merge_conditions(
            status.get("conditions") or [],
            desired_conditions(
                seen.phase, seen.reason, seen.message,
                accepted=accepted is None,
                accepted_reason=accepted.reason if accepted else "Valid",
                accepted_message=accepted.message if accepted else "the spec is valid",
            ),
            generation=generation, now=_stamp(now),
        )
        progress = seen.progress
        if "queuePosition" in seen.extras:
            place = seen.extras["queuePosition"]
            progress = {"queuePosition": place, "summary": f"queued #{place}"}
        new: Obj = {
            "observedGeneration": generation,
            "phase": seen.phase.value,
            "reason": seen.reason,
            "message": seen.message,
            "conditions": conditions,
            "progress": progress,
            "jobName": wanted_job,
            "attempts": seen.attempts or None,
            "startTime": seen.start_time,
            "completionTime": seen.completion_time,
            "output": self._output(body, seen),
        }
        if _same(status, new):
            return
        await self.kube.patch_animation_status(meta["namespace"], meta["name"], new)
        if old_phase != seen.phase.value or status.get("observedGeneration") != generation:
            await self._announce(body, seen)

    def _output(self, body: Obj, seen: Observation) -> Obj | None:
        spec = body.get("spec") or {}
        meta = body["metadata"]
        uri = spec.get("output") or default_output(self.settings, meta["namespace"], meta["name"])
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

    async def _announce(self, body: Obj, seen: Observation) -> None:
        if seen.phase is Phase.FAILED:
            metrics.FAILURES.labels(seen.reason).inc()
            await self.kube.event(body, "Warning", seen.reason, seen.message)
            return
        if seen.phase is Phase.SUCCEEDED and seen.start_time and seen.completion_time:
            started = dt.datetime.fromisoformat(seen.start_time.replace("Z", "+00:00"))
            ended = dt.datetime.fromisoformat(seen.completion_time.replace("Z", "+00:00"))
            metrics.JOB_DURATION.observe(max(0.0, (ended - started).total_seconds()))
        await self.kube.event(body, "Normal", seen.reason, seen.message)

    async def _reject(self, body: Obj, status: Obj, rejection: Rejection) -> None:
        meta = body["metadata"]
        self._release(meta["uid"])
        seen = Observation(Phase.FAILED, rejection.reason, rejection.message)
        await self._write(body, status, int(meta.get("generation") or 1), seen, None,
                          accepted=rejection)

    # -- queue -----------------------------------------------------------------------------

    def _admitted(self, uid: str, body: Obj, spec: AnimationSpec) -> bool:
        if uid in self.holding:
            return True
        meta = body["metadata"]
        entry = QueueEntry.of(
            uid=uid, namespace=meta["namespace"], name=meta["name"], priority=spec.priority,
            created=meta.get("creationTimestamp") or "")
        if self.waiting.get(uid) != entry:
            self.waiting[uid] = entry
            self._queue_view = None
            self.queue_changed.set()  # the others' queue positions move: refresh them soon
        if not self.caps.unlimited and uid not in self._view()[0]:
            self._update_gauges()
            return False
        self._hold(uid, meta["namespace"])
        return True

    def _view(self) -> tuple[set[str], dict[str, int]]:
        """(uids the caps admit now, uid → place in the queue), cached until the queue changes."""
        if self._queue_view is None:
            admitted = {e.uid for e in admit(self.waiting.values(), self.holding.values(),
                                             self.caps)}
            self._queue_view = (admitted, positions(self.waiting.values()))
        return self._queue_view

    def _hold(self, uid: str, namespace: str) -> None:
        self.waiting.pop(uid, None)
        self.holding[uid] = namespace
        self._queue_view = None

    def _release(self, uid: str) -> None:
        freed = self.holding.pop(uid, None) is not None
        left = self.waiting.pop(uid, None) is not None
        if freed or left:
            self._queue_view = None
            self.queue_changed.set()

    def _update_gauges(self) -> None:
        metrics.QUEUE_DEPTH.set(len(self.waiting))
        metrics.RUNNING_JOBS.set(len(self.holding))
        counts: dict[str, int] = defaultdict(int)
        for animation in self.store.animations.values():
            counts[(animation.get("status") or {}).get("phase") or "Pending"] += 1
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
        for problem in done.left + done.retry:
            await self.kube.event(body, "Warning", "OutputNotDeleted", problem)
        if done.deleted:
            await self.kube.event(body, "Normal", "OutputDeleted",
                                  f"deleted {' and '.join(done.deleted)}")
        finalizers.remove(L.OUTPUT_FINALIZER)
        await self.kube.patch_animation(meta["namespace"], meta["name"],
                                        {"metadata": {"finalizers": finalizers}})

    def objects(self) -> ObjectStore:
        if self._objects is None:
            self._objects = ObjectStore(self.settings.s3)
        return self._objects


def _same(old: Obj, new: Obj) -> bool:
    """Equal apart from transition times and absent-vs-None."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()
                    if v is not None and k not in ("lastTransitionTime", "updatedAt")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return bool(clean({k: old.get(k) for k in new}) == clean(new))
