"""Thin async wrappers over the Kubernetes client: the operator's only API calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, cast

from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)

    async def patch_animation_status(self, namespace: str, name: str, status: Obj) -> Obj:
        reply = await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace,
            PLURAL, name, {"status": status},
        )
        return cast(Obj, reply)

    async def patch_animation(self, namespace: str, name: str, patch: Obj) -> Obj:
        reply = await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
            name, patch,
        )
        return cast(Obj, reply)

    async def create_job(self, job: Any) -> Obj | None:
        """Create the Job; None when it already exists (a restart found its own Job)."""
        try:
            created = await asyncio.to_thread(
                self.batch.create_namespaced_job, job["metadata"]["namespace"], job)
        except client.ApiException as err:
            if err.status == 409:
                return None
            raise
        return cast(Obj, self.api.sanitize_for_serialization(created))

    async def read_job(self, namespace: str, name: str) -> Obj | None:
        try:
            job = await asyncio.to_thread(self.batch.read_namespaced_job, name, namespace)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return cast(Obj, self.api.sanitize_for_serialization(job))

    async def patch_job(self, namespace: str, name: str, patch: Obj) -> None:
        await asyncio.to_thread(self.batch.patch_namespaced_job, name, namespace, patch)

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(
                self.batch.delete_namespaced_job, name, namespace,
                propagation_policy="Background")
        except client.ApiException as err:
            if err.status != 404:
                raise

    async def event(self, animation: Obj, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on the Animation (what `kubectl describe` shows)."""
        meta = animation["metadata"]
        now = dt.datetime.now(dt.UTC)
        body: Any = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Animation",
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind, "reason": reason, "message": message[:1024],
            "source": {"component": "musepose-operator"},
            "reportingComponent": "musepose.io/operator",
            "reportingInstance": "musepose-operator",
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        try:
            await asyncio.to_thread(self.core.create_namespaced_event, meta["namespace"], body)
        except client.ApiException as err:  # events are best effort, never fatal
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err.reason)
