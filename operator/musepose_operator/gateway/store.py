"""The gateway's calls on Animations, with its own ServiceAccount (create, get, list,
delete, and patch for binding a record's seal: what its Role grants). The blocking client runs in threads; API errors the client
can fix become problems, the rest a 503."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from kubernetes import client
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
