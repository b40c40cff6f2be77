"""The reconciler's Job steps: the API calls that carry out a pass's decision.

Retire earlier generations' Jobs, make this generation's (its key Secret and Service first),
adopt one that exists already, suspend or resume it, delete it. What to do is
``reconcile.decide``'s; these only do it, and keep the views in step.
"""

from __future__ import annotations

import logging
import secrets

from musepose_operator import metrics
from musepose_operator.base.timestamps import seconds_since
from musepose_operator.base.types import Obj
from musepose_operator.cluster.kube import Kube
from musepose_operator.cluster.watch_cache import Views, key
from musepose_operator.planning.parallel import plan_service
from musepose_operator.planning.run_key import (
    KEY_BYTES,
    NotOurs,
    bind_run_key,
    owned_by,
    plan_run_secret,
)
from musepose_operator.reconcile.status_writer import StatusWriter
from musepose_operator.settings import Settings

log = logging.getLogger("musepose_operator")


class JobSteps:
    def __init__(self, kube: Kube, settings: Settings, views: Views,
                 status: StatusWriter) -> None:
        self.kube = kube
        self.settings = settings
        self.views = views
        self.status = status

    async def retire(self, body: Obj, old_jobs: tuple[Obj, ...], generation: int) -> None:
        """Delete Jobs of earlier generations (they describe a spec that no longer exists),
        each with a parallel run's headless Service."""
        namespace = body["metadata"]["namespace"]
        for old in old_jobs:
            old_name = old["metadata"]["name"]
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

    async def start(self, body: Obj, planned: Obj) -> Obj | None:
        """Create the ``planned`` Job (its GPUs are claimed already, or Kueue's to admit);
        None when a Job of that name exists already (``adopt`` reads it)."""
        meta = body["metadata"]
        wanted = planned["metadata"]["name"]
        labels = planned["spec"]["template"]["metadata"]["labels"]
        # Before the Job: its pods mount the key (a Secret under a generated name, so nobody
        # can have made it first), and their names resolve once the Service exists (found
        # made by someone else, it fails the start: NotOurs).
        key_secret = await self.kube.create_secret(plan_run_secret(
            body, wanted, secrets.token_bytes(KEY_BYTES), labels))
        planned = bind_run_key(planned, key_secret["metadata"]["name"])
        if planned["spec"]["template"]["spec"].get("subdomain"):
            await self._ours(meta, await self.kube.create_service(plan_service(
                body, wanted, self.settings, labels)))
        created = await self.kube.create_job(planned)
        if created is None:
            return None
        metrics.CREATE_TO_JOB.observe(seconds_since(meta["creationTimestamp"]))
        self.views.put_job(created)
        return created

    @staticmethod
    async def _ours(meta: Obj, made: Obj) -> None:
        if not owned_by(made, meta["uid"]):
            raise NotOurs(made.get("kind") or "object", meta["namespace"],
                          made["metadata"]["name"])

    async def adopt(self, meta: Obj, name: str) -> Obj | None:
        """Read an existing Job of this Animation's and its pods into the views (made just
        before a restart, its event still in flight); None when it is gone."""
        namespace = meta["namespace"]
        job = await self.kube.read_job(namespace, name)
        if job is None:
            return None
        await self._ours(meta, job)
        self.views.put_job(job)
        for pod in await self.kube.pods_of_job(namespace, name):
            self.views.put_pod(pod)
        return job

    async def set_suspend(self, body: Obj, job: Obj, suspend: bool) -> None:
        """Suspend or resume the Job, with an Event that says so."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        await self.kube.patch_job(namespace, name, {"spec": {"suspend": suspend}})
        verb = "suspended" if suspend else "resumed"
        await self.status.event(body, "Normal", verb.capitalize(), f"{verb} Job {name}",
                                body["metadata"].get("resourceVersion"))

    async def delete(self, job: Obj) -> None:
        await self.kube.delete_job(job["metadata"]["namespace"], job["metadata"]["name"])
