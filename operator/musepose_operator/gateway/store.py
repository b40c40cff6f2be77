"""The gateway's calls on Animations, with its own ServiceAccount (create, get, list,
delete, patch for binding a record's seal, and watch for event streams: what its Role
grants). The blocking client runs in threads; API errors the client can fix become
problems, the rest a 503."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any

from kubernetes import client, watch
from urllib3.exceptions import HTTPError as TransportError

from musepose_operator.admission.payload import SPEC_TO_PAYLOAD_FIELD, PayloadProblem
from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.gateway.problems import GatewayProblem, invalid_payload, upstream

log = logging.getLogger(__name__)


class AlreadyExists(Exception):
    pass


class AnimationStore:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = client.CustomObjectsApi(api)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._call(self._api.create_namespaced_custom_object, GROUP, VERSION,
                                    namespace, PLURAL, body)
        except client.ApiException as err:
            if err.status == 409:
                raise AlreadyExists() from None
            raise _problem(err) from None

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(self._api.get_namespaced_custom_object, GROUP, VERSION,
                                    namespace, PLURAL, name)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise _problem(err) from None

    async def list(self, namespace: str, selector: str, limit: int,
                   continue_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {"label_selector": selector, "limit": limit}
        if continue_token:
            kwargs["_continue"] = continue_token
        try:
            found = await self._call(self._api.list_namespaced_custom_object, GROUP, VERSION,
                                     namespace, PLURAL, **kwargs)
        except client.ApiException as err:
            if err.status in (400, 410):  # a malformed or expired continue token
                raise GatewayProblem(400, "invalid-request", "Invalid request",
                                     "continue: the token is invalid or expired",
                                     [PayloadProblem("continue", "invalid or expired")]
                                     ) from None
            raise _problem(err) from None
        return list(found.get("items") or []), (found.get("metadata") or {}).get("continue")

    async def annotate(self, namespace: str, name: str, uid: str,
                       annotations: dict[str, str]) -> dict[str, Any] | None:
        """Add ``annotations`` to the object ``uid`` (a precondition: never to another object
        by that name); None when that object is gone."""
        patch = {"metadata": {"uid": uid, "annotations": annotations}}
        try:
            return await self._call(self._api.patch_namespaced_custom_object, GROUP, VERSION,
                                    namespace, PLURAL, name, patch,
                                    _content_type="application/merge-patch+json")
        except client.ApiException as err:
            if err.status in (404, 409):  # gone, or replaced by another object (uid)
                return None
            raise _problem(err) from None

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete (Background propagation: the GC then deletes its Job and pods)."""
        try:
            await self._call(self._api.delete_namespaced_custom_object, GROUP, VERSION,
                             namespace, PLURAL, name, propagation_policy="Background")
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise _problem(err) from None
        return True

    def watch(self, namespace: str, name: str, resource_version: str,
              timeout_seconds: int) -> ObjectWatch:
        """Changes to the Animation ``name`` after ``resource_version``."""
        return ObjectWatch(self._api, namespace, name, resource_version, timeout_seconds)

    @staticmethod
    async def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(method, *args, **kwargs)
        except (OSError, TransportError) as err:
            log.error("Kubernetes API unreachable: %s", err)
            raise upstream("the Kubernetes API is unreachable") from None


def _problem(err: client.ApiException) -> GatewayProblem:
    try:
        status = json.loads(err.body or "{}")
        message = str(status.get("message") or err.reason)
        causes = (status.get("details") or {}).get("causes") or []
    except (json.JSONDecodeError, AttributeError):
        message, causes = str(err.reason), []
    if err.status == 422:
        # Admission (the CRD's schema and CEL rules, admission policies) refused it: the
        # client's to fix, named by payload field where the API server names a spec field.
        return invalid_payload([
            PayloadProblem(_payload_field(str(c.get("field") or "")), str(c.get("message")))
            for c in causes if isinstance(c, dict)
        ] or [PayloadProblem("payload", message)])
    if err.status == 403:
        # The gateway's own Role does not reach this namespace.
        return GatewayProblem(403, "namespace-not-served", "Namespace not served",
                              "the gateway may not manage Animations in this namespace")
    log.error("Kubernetes API error %s: %s", err.status, message)
    return upstream(f"the Kubernetes API answered {err.status}")


def _payload_field(api_field: str) -> str:
    spec_field = api_field.removeprefix("spec.")
    return SPEC_TO_PAYLOAD_FIELD.get(spec_field, api_field or "payload")


# What ObjectWatch.next answers when the watch ended: the API server closed it (its
# timeout), or it failed (then ``code`` is the HTTP status, 410: the version expired).
WATCH_ENDED = "ENDED"


class ObjectWatch:
    """A watch of one Animation on a thread of its own (not the shared pool the other calls
    use: a watch holds its thread for as long as it is open). ``close`` stops it at once."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, name: str,
                 resource_version: str, timeout_seconds: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._watch = watch.Watch()
        self._args = (api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
        self._kwargs = {"field_selector": f"metadata.name={name}",
                        "resource_version": resource_version,
                        "timeout_seconds": timeout_seconds}
        threading.Thread(target=self._pump, name=f"watch-{namespace}/{name}",
                         daemon=True).start()

    def _pump(self) -> None:
        ended: dict[str, Any] = {}
        try:
            for event in self._watch.stream(*self._args, **self._kwargs):
                self._put((str(event["type"]), event["raw_object"]))
        except client.ApiException as err:
            ended = {"code": err.status}
        except Exception as err:  # unreachable API server, a closed socket: the end
            ended = {"code": 503, "error": type(err).__name__}
        self._put((WATCH_ENDED, ended))

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)

    async def next(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        """The next (type, object): ADDED/MODIFIED/DELETED, or WATCH_ENDED; None when
        nothing came within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._watch.stop()
