"""Thin async wrappers over the Kubernetes client: the operator's only API calls.

Each call runs on the operator's call pool in the lane of what it is for (callpool.py):
Jobs first, then status, then Events."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, cast

from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.base.timestamps import format_time, now
from musepose_operator.base.types import Obj
from musepose_operator.cluster.callpool import CallPool, Lane

log = logging.getLogger(__name__)


class Conflict(Exception):
    """A write was refused because the object changed since it was read (HTTP 409)."""


DEFAULT_API_THREADS = 16


async def _json(pool: CallPool, lane: Lane, call: Any, *args: Any, **kwargs: Any) -> Any:
    """The API server's JSON as it sent it. The typed client's models turn timestamps into
    datetimes that serialise differently ("+00:00", not "Z"): objects read that way would
    differ from the same objects delivered by the watches, and every status copied from
    them would look changed."""
    reply = await pool.run(lane, call, *args, _preload_content=False, **kwargs)
    return json.loads(reply.data)


class Kube:
    def __init__(self, api: client.ApiClient, calls: CallPool | None = None) -> None:
        self.api = api
        self.calls = calls or CallPool(DEFAULT_API_THREADS)
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    async def patch_animation_status(self, namespace: str, name: str, status: Obj,
                                     resource_version: str | None) -> Obj:
        """Merge ``status`` in, only if the Animation is still at ``resource_version`` (the
        version the decision was made on); Conflict otherwise, so a pass that read a stale
        Animation can never overwrite a newer status."""
        patch: Obj = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        try:
            reply = await self.calls.run(
                Lane.STATUS, self.custom.patch_namespaced_custom_object_status, GROUP, VERSION,
                namespace, PLURAL, name, patch,
            )
        except client.ApiException as err:
            if err.status == 409:
                raise Conflict(f"{namespace}/{name} changed since it was read") from err
            raise
        return cast(Obj, reply)

    async def read_animation(self, namespace: str, name: str) -> Obj | None:
        try:
            reply = await self.calls.run(
                Lane.STATUS, self.custom.get_namespaced_custom_object, GROUP, VERSION,
                namespace, PLURAL, name)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return cast(Obj, reply)

    async def list_jobs_and_pods(self, namespaces: list[str] | None, selector: str
                                 ) -> tuple[list[Obj], list[Obj]]:
        """Every Job and Pod matching ``selector`` in ``namespaces`` (all when None)."""
        jobs: list[Obj] = []
        pods: list[Obj] = []
        scopes: list[str | None] = list(namespaces) if namespaces else [None]
        for namespace in scopes:
            if namespace is None:
                job_list = await _json(self.calls, Lane.WORK,
                                       self.batch.list_job_for_all_namespaces,
                                       label_selector=selector)
                pod_list = await _json(self.calls, Lane.WORK,
                                       self.core.list_pod_for_all_namespaces,
                                       label_selector=selector)
            else:
                job_list = await _json(self.calls, Lane.WORK, self.batch.list_namespaced_job,
                                       namespace,
                                       label_selector=selector)
                pod_list = await _json(self.calls, Lane.WORK, self.core.list_namespaced_pod,
                                       namespace,
                                       label_selector=selector)
            jobs.extend(job_list.get("items") or [])
            pods.extend(pod_list.get("items") or [])
        return jobs, pods

    async def peers(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The kopf peering object's status (identity → priority, lastseen, lifetime)."""
        try:
            if namespace is None:
                obj = await self.calls.run(
                    Lane.WORK, self.custom.get_cluster_custom_object, "kopf.dev", "v1",
                    "clusterkopfpeerings", name)
            else:
                obj = await self.calls.run(
                    Lane.WORK, self.custom.get_namespaced_custom_object, "kopf.dev", "v1",
                    namespace, "kopfpeerings", name)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(cast(Obj, obj).get("status") or {})

    async def pods_of_job(self, namespace: str, job_name: str) -> list[Obj]:
        reply = await _json(self.calls, Lane.WORK, self.core.list_namespaced_pod, namespace,
                            label_selector=f"batch.kubernetes.io/job-name={job_name}")
        return list(reply.get("items") or [])

    async def patch_animation(self, namespace: str, name: str, patch: Obj) -> Obj:
        reply = await self.calls.run(
            Lane.STATUS, self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
            PLURAL, name, patch,
        )
        return cast(Obj, reply)

    async def create_job(self, job: Any) -> Obj | None:
        """Create the Job; None when it already exists (a restart found its own Job)."""
        try:
            created = await _json(self.calls, Lane.WORK, self.batch.create_namespaced_job,
                                  job["metadata"]["namespace"], job)
        except client.ApiException as err:
            if err.status == 409:
                return None
            raise
        return cast(Obj, created)

    async def read_job(self, namespace: str, name: str) -> Obj | None:
        try:
            job = await _json(self.calls, Lane.WORK, self.batch.read_namespaced_job, name,
                              namespace)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return cast(Obj, job)

    async def patch_job(self, namespace: str, name: str, patch: Obj) -> None:
        await self.calls.run(Lane.WORK, self.batch.patch_namespaced_job, name, namespace, patch)

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self.calls.run(
                Lane.WORK, self.batch.delete_namespaced_job, name, namespace,
                propagation_policy="Background")
        except client.ApiException as err:
            if err.status != 404:
                raise

    async def create_service(self, service: Obj) -> Obj:
        """Create a parallel run's headless Service; the one already there when the name is
        taken (whose it is, the caller checks: ``run_key.owned_by``)."""
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        try:
            made = await _json(self.calls, Lane.WORK, self.core.create_namespaced_service,
                               namespace, service)
        except client.ApiException as err:
            if err.status != 409:
                raise
            made = await _json(self.calls, Lane.WORK, self.core.read_namespaced_service,
                               name, namespace)
        return cast(Obj, made)

    async def create_secret(self, secret: Obj) -> Obj:
        """Create a run's key Secret (``generateName``: the name is the API server's). The
        reply's data is not kept; the operator never reads a Secret back."""
        namespace = secret["metadata"]["namespace"]
        made = await _json(self.calls, Lane.WORK, self.core.create_namespaced_secret,
                           namespace, secret)
        made.pop("data", None)
        return cast(Obj, made)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of one Secret (None: it does not exist). Only the callbacks'
        Secret, named in the Role's resourceNames, is readable to the operator."""
        try:
            secret = await _json(self.calls, Lane.STATUS, self.core.read_namespaced_secret,
                                 name, namespace)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return {key: base64.b64decode(value).decode("utf-8", "replace")
                for key, value in (secret.get("data") or {}).items()}

    async def delete_service(self, namespace: str, name: str) -> None:
        try:
            await self.calls.run(Lane.WORK, self.core.delete_namespaced_service, name,
                                 namespace)
        except client.ApiException as err:
            if err.status != 404:
                raise

    async def event(self, animation: Obj, kind: str, reason: str, message: str,
                    name: str | None = None) -> None:
        """A core/v1 Event on the Animation (what `kubectl describe` shows). ``name`` is
        deterministic per announcement: an Event that already exists was already made."""
        meta = animation["metadata"]
        stamp = format_time(now())
        body: Any = {
            "metadata": {"namespace": meta["namespace"],
                         **({"name": name} if name else {"generateName": f"{meta['name']}."})},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind, "reason": reason, "message": message[:1024],
            "source": {"component": "musepose-operator"},
            "reportingComponent": "musepose.io/operator",
            "reportingInstance": "musepose-operator",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.calls.run(Lane.EVENTS, self.core.create_namespaced_event,
                                 meta["namespace"], body)
        except client.ApiException as err:  # events are best effort, never fatal
            if err.status == 409:
                return  # announced before (by this process or one before a restart)
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)
