"""The reconciler's Job steps: which Job this generation runs, making it, following it.

Each step acts on the API (create, adopt, suspend or resume, delete a Job) and says what it
saw (``Run``); whether the Animation then holds its GPUs is the controller's to apply
(``slots.keeps_gpus``), and the status is the status writer's.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from musepose_operator import metrics
from musepose_operator.api import AnimationSpec, Phase
from musepose_operator.base.timestamps import now, seconds_since
from musepose_operator.cluster.kube import Kube
from musepose_operator.cluster.watch_cache import Views, key
from musepose_operator.gpus.slots import job_finished
from musepose_operator.planning import plan_job
from musepose_operator.planning.job import planned_job_name, runner_labels
from musepose_operator.planning.parallel import plan_service
from musepose_operator.planning.reuse import runs_the_same
from musepose_operator.planning.run_key import KEY_BYTES, owned_by, plan_run_secret
from musepose_operator.reconcile.status_writer import StatusWriter
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation, observe

log = logging.getLogger("musepose_operator")
Obj = dict[str, Any]


class NotOurs(Exception):
    """An object the run needs exists by its name but is not this Animation's (a tenant
    made it first): never adopted."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this "
                         "Animation: delete it, then edit the Animation to run again")


@dataclass(frozen=True)
class Run:
    """What a Job step saw: its Job (None: none to follow) and pods, and the snapshot
    for the status (None: nothing to say yet)."""

    seen: Observation | None
    job: Obj | None = None
    pods: list[Obj] = field(default_factory=list)


class JobSteps:
    def __init__(self, kube: Kube, settings: Settings, views: Views,
                 status: StatusWriter) -> None:
        self.kube = kube
        self.settings = settings
        self.views = views
        self.status = status

    async def current(self, body: Obj, spec: AnimationSpec, generation: int,
                      fallback: bool) -> tuple[Obj | None, str]:
        """This generation's Job (None: not made yet) and its name. An edit the run never
        sees (spec.suspend above all) keeps the Job it has; other Jobs are deleted."""
        meta = body["metadata"]
        wanted = planned_job_name(body, spec, self.settings, memory_fallback=fallback)
        jobs = self.views.jobs_of(meta["uid"])  # read (decoded) once for the whole pass
        if jobs and all(j["metadata"]["name"] != wanted for j in jobs):
            planned = plan_job(body, spec, self.settings, memory_fallback=fallback)
            wanted = next((j["metadata"]["name"] for j in jobs
                           if runs_the_same(j, planned)), wanted)
        await self._retire_old_jobs(body, jobs, wanted, generation)
        return next((j for j in jobs if j["metadata"]["name"] == wanted), None), wanted

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
            self.views.drop_job(old)
            subdomain = ((old.get("spec") or {}).get("template") or {}).get(
                "spec", {}).get("subdomain")
            if subdomain:  # a parallel run's headless Service goes with its Job
                await self.kube.delete_service(namespace, subdomain)
            await self.status.event(body, "Normal", "SpecChanged",
                                    f"spec changed: replacing Job {old_name}", generation)

    async def start(self, body: Obj, spec: AnimationSpec, wanted: str, kueue: bool,
                    memory_fallback: bool = False) -> Run:
        """Create the Job (its GPUs are claimed already, or Kueue's to admit)."""
        meta = body["metadata"]
        labels = runner_labels(meta["name"], meta["uid"], int(meta.get("generation") or 1))
        # Before the Job: its pods mount the key (a Secret under a generated name, so nobody
        # can have made it first), and their names resolve once the Service exists (found
        # made by someone else, it fails the start: NotOurs).
        key_secret = await self.kube.create_secret(plan_run_secret(
            body, wanted, secrets.token_bytes(KEY_BYTES), labels))
        planned = plan_job(body, spec, self.settings, memory_fallback=memory_fallback,
                           run_key_secret=key_secret["metadata"]["name"])
        if planned["spec"]["template"]["spec"].get("subdomain"):
            await self._ours(meta, await self.kube.create_service(plan_service(
                body, wanted, self.settings, labels)))
        created = await self.kube.create_job(planned)
        if created is None:
            # It exists though the view lacks it (made just before a restart, its event
            # still in flight): decide from the Job and its pods as they are, never from
            # "just created".
            job = await self._adopt(meta, wanted)
            return Run(None) if job is None else await self.follow(body, spec, job, kueue)
        metrics.CREATE_TO_JOB.observe(seconds_since(meta["creationTimestamp"]))
        self.views.put_job(created)
        if kueue:
            seen = observe(created, [], now=now(), pending_timeout=1e9, kueue_managed=True)
            return Run(seen, created)
        return Run(Observation(Phase.PENDING, "JobCreated", f"created Job {wanted}; waiting "
                               "for the runner pod"), created)

    @staticmethod
    async def _ours(meta: Obj, made: Obj) -> None:
        if not owned_by(made, meta["uid"]):
            raise NotOurs(made.get("kind") or "object", meta["namespace"],
                          made["metadata"]["name"])

    async def _adopt(self, meta: Obj, name: str) -> Obj | None:
        """Read an existing Job of this Animation's and its pods into the views."""
        namespace = meta["namespace"]
        job = await self.kube.read_job(namespace, name)
        if job is None:
            return None
        await self._ours(meta, job)
        self.views.put_job(job)
        for pod in await self.kube.pods_of_job(namespace, name):
            self.views.put_pod(pod)
        return job

    async def follow(self, body: Obj, spec: AnimationSpec, job: Obj, kueue: bool) -> Run:
        """The Job as it runs: suspended or resumed as the spec says, deleted when its pod
        is stuck past the timeout."""
        if not kueue and not job_finished(job):
            job = await self._suspend_as_asked(body, spec, job)
        pods = self.views.pods_of(job)
        seen = observe(job, pods, now=now(),
                       pending_timeout=self.settings.pending_timeout_seconds,
                       kueue_managed=kueue)
        if seen.delete_job:
            await self.kube.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
        return Run(seen, job, pods)

    async def _suspend_as_asked(self, body: Obj, spec: AnimationSpec, job: Obj) -> Obj:
        """Suspend or resume the Job as spec.suspend says (never a Kueue-managed Job: those
        are Kueue's to suspend); the Job as it now is."""
        if bool((job.get("spec") or {}).get("suspend")) == spec.suspend:
            return job
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        await self.kube.patch_job(namespace, name, {"spec": {"suspend": spec.suspend}})
        verb = "suspended" if spec.suspend else "resumed"
        await self.status.event(body, "Normal", verb.capitalize(), f"{verb} Job {name}",
                                body["metadata"].get("resourceVersion"))
        return {**job, "spec": {**(job.get("spec") or {}), "suspend": spec.suspend}}
