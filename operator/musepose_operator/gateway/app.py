"""The HTTP routes of the original endpoint, on aiohttp.

    POST   /animate          payload → 202 + Location (200: the same request again)
    GET    /animate          the caller's requests in a namespace
    GET    /animate/{id}     status: phase, progress, ETA, message, output
    DELETE /animate/{id}     cancel: deletes the Animation (its Job and pods go with it)
    GET    /openapi.json     the OpenAPI document;  GET /healthz  liveness

Each request: authenticate, resolve the namespace, SubjectAccessReview, then act with the
gateway's own ServiceAccount. Every error leaves as problem+json (problems.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel

from musepose_operator.convert import InvalidPayload, name_from_id
from musepose_operator.gateway import problems
from musepose_operator.gateway.auth import Authenticator, Caller
from musepose_operator.gateway.body import check_content_type, parse_payload
from musepose_operator.gateway.keys import NAMESPACE_PATTERN
from musepose_operator.gateway.openapi import NAMESPACE_HEADER, openapi_document
from musepose_operator.gateway.problems import GatewayProblem, bad_request, forbidden
from musepose_operator.gateway.records import (
    gateway_animation,
    is_same_request,
    mine_selector,
    verified,
)
from musepose_operator.gateway.store import AlreadyExists, AnimationStore
from musepose_operator.gateway.views import RequestList, request_view
from musepose_operator.sealing import SealKeys

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_LIST_LIMIT = 500


@dataclass(frozen=True)
class GatewayConfig:
    # Namespaces the gateway serves; empty: any its RBAC reaches.
    namespaces: frozenset[str] = frozenset()
    # Where a request that names no namespace goes (else it must name one).
    default_namespace: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Seal the gateway's records (records.py); random when not given: records made before a
    # restart are then no longer recognised.
    record_keys: SealKeys = field(default_factory=SealKeys.generate, repr=False)


_CONFIG = web.AppKey("config", GatewayConfig)
_STORE = web.AppKey("store", AnimationStore)
_AUTH = web.AppKey("auth", Authenticator)


def build_app(config: GatewayConfig, store: AnimationStore, auth: Authenticator
              ) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes,
                          middlewares=[_problems_middleware])
    app[_CONFIG], app[_STORE], app[_AUTH] = config, store, auth
    app.add_routes([
        web.post("/animate", _submit),
        web.get("/animate", _list),
        web.get("/animate/{id}", _status),
        web.delete("/animate/{id}", _cancel),
        web.get("/openapi.json", _openapi),
        web.get("/healthz", _healthz),
    ])
    return app


# -- routes -------------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.Response:
    caller, namespace = await _authorised(request, "create")
    config = request.app[_CONFIG]
    check_content_type(request.headers.get("Content-Type"))
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise problems.too_large(config.max_body_bytes)
    payload = parse_payload(await request.read())
    try:
        animation = gateway_animation(payload, namespace, caller.name, config.record_keys)
    except InvalidPayload as err:
        raise problems.invalid_payload(err.problems) from None

    store, auth = request.app[_STORE], request.app[_AUTH]
    name = animation["metadata"]["name"]
    for _ in range(2):  # a second try only if the existing one vanished meanwhile
        try:
            created = await store.create(namespace, animation)
        except AlreadyExists:
            existing = await store.get(namespace, name)
            if existing is None:
                continue
            if not is_same_request(existing, animation, config.record_keys):
                raise problems.id_conflict(payload["id"]) from None
            may_see = await auth.allowed(caller, "get", namespace, name)
            return _json(request_view(existing, may_see_url=may_see), 200)
        log.info("%s created %s/%s for id %r", caller.name, namespace, name, payload["id"])
        view = request_view(created, may_see_url=False)  # nothing to see yet
        return _json(view, 202, {"Location": _location(view.id, namespace)})
    raise problems.upstream("the request was deleted while being submitted; retry")


async def _status(request: web.Request) -> web.Response:
    original = request.match_info["id"]
    _, namespace = await _authorised(request, "get", name_from_id(original))
    obj = await _find(request, namespace, original)
    return _json(request_view(obj, may_see_url=True))


async def _cancel(request: web.Request) -> web.Response:
    original = request.match_info["id"]
    caller, namespace = await _authorised(request, "delete", name_from_id(original))
    obj = await _find(request, namespace, original)
    if not await request.app[_STORE].delete(namespace, obj["metadata"]["name"]):
        raise problems.not_found(original, namespace)
    log.info("%s cancelled %s/%s", caller.name, namespace, obj["metadata"]["name"])
    may_see = await request.app[_AUTH].allowed(caller, "get", namespace,
                                               obj["metadata"]["name"])
    return _json(request_view(obj, may_see_url=may_see), 202)


async def _list(request: web.Request) -> web.Response:
    caller, namespace = await _authorised(request, "list")
    limit = _limit(request.query.get("limit"))
    found, token = await request.app[_STORE].list(
        namespace, mine_selector(caller.name), limit, request.query.get("continue"))
    # The selector matches marks anyone can copy; only records the gateway sealed for this
    # caller are theirs (a page may hold fewer than ``limit``; the token still continues).
    keys = request.app[_CONFIG].record_keys
    items = [obj for obj in found
             if (record := verified(obj, keys)) and record.requester == caller.name]
    may_see = await request.app[_AUTH].allowed(caller, "get", namespace)
    views = [request_view(obj, may_see_url=may_see) for obj in items]
    return _json(RequestList(items=views, continue_token=token))


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[_CONFIG].max_body_bytes))


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


# -- helpers ------------------------------------------------------------------------------


async def _authorised(request: web.Request, verb: str, name: str | None = None
                      ) -> tuple[Caller, str]:
    """Authenticate, pick the namespace, and check ``verb`` on animations there."""
    auth = request.app[_AUTH]
    caller = await auth.authenticate(request.headers)
    namespace = _namespace(request, caller)
    if not await auth.allowed(caller, verb, namespace, name):
        raise forbidden(f"{caller.name} may not {verb} animations in namespace {namespace!r}")
    return caller, namespace


def _namespace(request: web.Request, caller: Caller) -> str:
    config = request.app[_CONFIG]
    query, header = request.query.get("namespace"), request.headers.get(NAMESPACE_HEADER)
    if query and header and query != header:
        raise bad_request("namespace", f"the query says {query!r}, {NAMESPACE_HEADER} "
                                       f"says {header!r}")
    namespace = query or header
    if not namespace:
        keyed = caller.key_namespaces
        if keyed and len(keyed) == 1:
            namespace = next(iter(keyed))
        elif config.default_namespace:
            namespace = config.default_namespace
        else:
            raise bad_request("namespace", f"required: ?namespace= or {NAMESPACE_HEADER}")
    if len(namespace) > 63 or not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise bad_request("namespace", f"{namespace[:80]!r} is not a namespace name")
    if config.namespaces and namespace not in config.namespaces:
        raise GatewayProblem(403, "namespace-not-served", "Namespace not served",
                             f"this gateway does not serve namespace {namespace!r}")
    return namespace


async def _find(request: web.Request, namespace: str, original: str) -> dict[str, Any]:
    """The gateway's sealed record for ``original``; 404 for anything else by that name
    (made by kubectl, or carrying copied marks or a seal that does not verify)."""
    obj = await request.app[_STORE].get(namespace, name_from_id(original))
    record = verified(obj, request.app[_CONFIG].record_keys) if obj is not None else None
    if obj is None or record is None or record.original_id != original:
        raise problems.not_found(original, namespace)
    return obj


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value[:6]) <= MAX_LIST_LIMIT:
        raise bad_request("limit", f"must be an integer from 1 to {MAX_LIST_LIMIT}")
    return int(value)


def _location(original: str, namespace: str) -> str:
    return f"/animate/{quote(original, safe='')}?namespace={namespace}"


def _json(model: BaseModel, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True), status=status,
                             headers=headers)


def _problem_response(problem: GatewayProblem, path: str) -> web.Response:
    body = problem.details(instance=path).model_dump(mode="json", exclude_none=True)
    return web.json_response(body, status=problem.status, headers=problem.headers,
                             content_type=problems.MEDIA_TYPE)


@web.middleware
async def _problems_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except GatewayProblem as problem:
        return _problem_response(problem, request.path)
    except web.HTTPRequestEntityTooLarge:
        return _problem_response(problems.too_large(request.app[_CONFIG].max_body_bytes),
                                 request.path)
    except web.HTTPException as http:
        if http.status < 400:
            raise
        kind = re.sub(r"[^a-z]+", "-", (http.reason or "error").lower()).strip("-")
        headers = {k: v for k, v in http.headers.items() if k.lower() == "allow"}
        return _problem_response(GatewayProblem(http.status, kind, http.reason,
                                                f"{request.method} {request.path}: "
                                                f"{http.reason}", headers=headers),
                                 request.path)
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _problem_response(GatewayProblem(500, "internal-error", "Internal error",
                                                "the gateway failed; see its log"),
                                 request.path)
