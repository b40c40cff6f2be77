"""Compatibility gateway: the original REST endpoint, served on top of Animations.

Old clients POST their JSON payload as before; the gateway converts it (``convert.py``)
and creates the Animation, then answers status queries by the original id. It holds no
state of its own: the Animation (found by its name, derived from the id) is the record.

    POST /animate          payload → 202 {id, name, namespace, phase}
    GET  /animate/{id}     → {id, name, phase, message, progress, output}
    GET  /healthz          → ok
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

from aiohttp import web
from kubernetes import client

from musepose_operator.api import GROUP, PLURAL, VERSION
from musepose_operator.convert import (
    InvalidPayload,
    PayloadProblem,
    name_from_id,
    payload_to_animation,
)

log = logging.getLogger(__name__)

_API = web.AppKey("api", client.CustomObjectsApi)
_NAMESPACE = web.AppKey("namespace", str)


def build_app(api: client.CustomObjectsApi, namespace: str) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[_API] = api
    app[_NAMESPACE] = namespace
    app.add_routes([
        web.post("/animate", _submit),
        web.get("/animate/{id}", _status),
        web.get("/healthz", _healthz),
    ])
    return app


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _submit(request: web.Request) -> web.Response:
    try:
        payload = json.loads(await request.text())
    except json.JSONDecodeError as err:
        return _problems(400, [PayloadProblem("payload", f"not valid JSON: {err.msg}")])
    if not isinstance(payload, dict):
        return _problems(400, [PayloadProblem("payload", "must be a JSON object")])
    try:
        animation = payload_to_animation(payload)
    except InvalidPayload as err:
        return _problems(400, err.problems)

    api, namespace = request.app[_API], request.app[_NAMESPACE]
    name = animation["metadata"]["name"]
    try:
        await asyncio.to_thread(
            api.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, animation
        )
        code = 202
    except client.ApiException as err:
        if err.status != 409:
            return _api_error(err)
        # The same id again: the original endpoint answered with the existing job's state.
        existing = await _get_animation(api, namespace, name)
        if existing.get("spec", {}) | animation["spec"] != existing.get("spec", {}):
            return _problems(409, [PayloadProblem(
                "id", f"{payload['id']!r} already exists with a different payload")])
        code = 200
    return web.json_response(
        {"id": payload["id"], "name": name, "namespace": namespace, "phase": "Pending"},
        status=code,
    )


async def _status(request: web.Request) -> web.Response:
    original_id = request.match_info["id"]
    api, namespace = request.app[_API], request.app[_NAMESPACE]
    try:
        obj = await _get_animation(api, namespace, name_from_id(original_id))
    except client.ApiException as err:
        if err.status == 404:
            return _problems(404, [PayloadProblem("id", f"no animation {original_id!r}")])
        return _api_error(err)
    status: dict[str, Any] = obj.get("status") or {}
    return web.json_response({
        "id": original_id,
        "name": obj["metadata"]["name"],
        "phase": status.get("phase", "Pending"),
        "message": status.get("message"),
        "progress": status.get("progress"),
        "output": status.get("output"),
    })


async def _get_animation(
    api: client.CustomObjectsApi, namespace: str, name: str
) -> dict[str, Any]:
    obj = await asyncio.to_thread(
        api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
    )
    return cast(dict[str, Any], obj)


def _problems(code: int, problems: list[PayloadProblem]) -> web.Response:
    return web.json_response(
        {"errors": [{"field": p.field, "message": p.message} for p in problems]}, status=code
    )


def _api_error(err: client.ApiException) -> web.Response:
    log.warning("Kubernetes API error %s: %s", err.status, err.reason)
    try:
        message = json.loads(err.body or "{}").get("message", err.reason)
    except json.JSONDecodeError:
        message = err.reason
    # Admission (CEL/OpenAPI) rejections are the client's to fix; the rest are ours.
    code = 400 if err.status == 422 else 502
    return web.json_response({"errors": [{"field": "payload", "message": message}]}, status=code)


def serve(host: str, port: int, namespace: str) -> None:
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    web.run_app(build_app(client.CustomObjectsApi(), namespace), host=host, port=port)
