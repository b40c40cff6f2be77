"""The HTTP routes of the original endpoint, on aiohttp.

    POST   /animate          payload → 202 + Location (200: the same request again)
    GET    /animate          the caller's requests in a namespace
    GET    /animate/{id}     status: phase, progress, ETA, message, output
    GET    /animate/{id}/events   the same as server-sent events until it ends (events.py)
    DELETE /animate/{id}     cancel: deletes the Animation (its Job and pods go with it)
    POST   /uploads          {name, content_type, size} → an S3 POST policy (uploads.py)
    GET    /                 the web page (page.py, static/)
    GET    /openapi.json     the OpenAPI document;  GET /healthz  liveness

RunPod's serverless API, for clients of the RunPod worker (runpod.py), at the root and
under /v2/{namespace} (RunPod's /v2/{endpoint_id}: the namespace is the endpoint):

    POST   /run  /runsync    {"input": payload, ...} → {"id", "status"}; runsync waits
    GET    /status/{id}      RunPod's job status;  POST /cancel/{id}  cancel, stays CANCELLED
    GET    /health           RunPod's job and worker counts for the namespace

Each request: authenticate, resolve the namespace, SubjectAccessReview, then act with the
gateway's own ServiceAccount. Every error leaves as problem+json (problems.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ValidationError

from musepose_operator.admission.callback_targets import form_problem
from musepose_operator.admission.payload import InvalidPayload, PayloadProblem, name_from_id
from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.base.sealing import SealKeys
from musepose_operator.gateway import data_uris, events, page, problems, runpod, streams
from musepose_operator.gateway.auth import Authenticator, Caller
from musepose_operator.gateway.body import check_content_type, parse_payload
from musepose_operator.gateway.keys import NAMESPACE_PATTERN
from musepose_operator.gateway.openapi import NAMESPACE_HEADER, openapi_document
from musepose_operator.gateway.presigning import Presigner
from musepose_operator.gateway.problems import GatewayProblem, bad_request, forbidden
from musepose_operator.gateway.records import (
    CANCELLED_ANNOTATION,
    GATEWAY_LABEL,
    Record,
    bound_seal,
    gateway_animation,
    is_same_request,
    is_tombstone_of,
    mine_selector,
    pending,
    seal_tombstone,
    tombstone,
    tombstone_name,
    verified,
)
from musepose_operator.gateway.responses import RequestList, request_view
from musepose_operator.gateway.store import AlreadyExists, AnimationStore
from musepose_operator.gateway.uploads import (
    DEFAULT_MAX_UPLOAD_BYTES,
    Destination,
    UploadRequest,
    destination,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_LIST_LIMIT = 500
# /runsync answers by then at the latest (IN_QUEUE / IN_PROGRESS with the id to poll);
# ?wait=<ms> asks for less. RunPod's own bound is about 90 s too.
DEFAULT_RUNSYNC_WAIT_SECONDS = 90.0
RUNSYNC_POLL_SECONDS = 1.0
HEALTH_MAX_PAGES = 20  # /health counts at most this many pages of 500 requests


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
    runsync_wait_seconds: float = DEFAULT_RUNSYNC_WAIT_SECONDS
    # Namespace → s3://bucket/prefix/ that relative object names in its payloads resolve
    # against (the operator's storage.namespaces.<ns>.objectBase).
    object_bases: dict[str, str] = field(default_factory=dict)
    # TEST SUITE ONLY (settings callbacks.loopbackForTests): webhooks to https://localhost
    # and 127.0.0.0/8 pass the submission check.
    webhook_loopback_for_tests: bool = False
    # Event streams (GET /animate/{id}/events) one caller may hold open at once.
    max_event_streams: int = 4
    # POST /uploads: signs with these S3 keys (None: uploads are not offered), files up to
    # this size, into each namespace's object base.
    presigner: Presigner | None = field(default=None, repr=False)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    # POST /animate: reference_image / watermark_path as data: URIs up to this many decoded
    # bytes (with uploads on), stored in the namespace's uploads folder (data_uris.py).
    max_data_uri_bytes: int = data_uris.DEFAULT_MAX_DATA_URI_BYTES

    @property
    def max_submit_bytes(self) -> int:
        """POST /animate's body bound: the payload's plus room for the inline images."""
        if self.presigner is None:
            return self.max_body_bytes
        return self.max_body_bytes + len(data_uris.DATA_URI_FIELDS) * (
            data_uris.encoded_allowance(self.max_data_uri_bytes))


_CONFIG = web.AppKey("config", GatewayConfig)
_STORE = web.AppKey("store", AnimationStore)
_AUTH = web.AppKey("auth", Authenticator)
_STREAMS = web.AppKey("streams", events.StreamSlots)


def build_app(config: GatewayConfig, store: AnimationStore, auth: Authenticator
              ) -> web.Application:
    app = web.Application(client_max_size=config.max_submit_bytes,
                          middlewares=[_problems_middleware])
    app[_CONFIG], app[_STORE], app[_AUTH] = config, store, auth
    app[_STREAMS] = events.StreamSlots(config.max_event_streams)
    app.add_routes([
        web.post("/animate", _submit),
        web.get("/animate", _list),
        web.get("/animate/{id}", _status),
        web.get("/animate/{id}/events", _events),
        web.delete("/animate/{id}", _cancel),
        web.post("/uploads", _upload),
        web.get("/openapi.json", _openapi),
        web.get("/healthz", _healthz),
        *page.routes(config.presigner.origin if config.presigner else None),
    ])
    for prefix in ("", "/v2/{endpoint}"):
        app.add_routes([
            web.post(f"{prefix}/run", _run),
            web.post(f"{prefix}/runsync", _runsync),
            web.get(f"{prefix}/status/{{id}}", _job_status),
            web.post(f"{prefix}/cancel/{{id}}", _job_cancel),
            web.get(f"{prefix}/health", _health),
        ])
    return app


# -- routes -------------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.Response:
    caller, namespace = await _authorised(request, "create")
    config = request.app[_CONFIG]
    payload, inline = _inline_images(config, namespace,
                                     await _body(request, config.max_submit_bytes))
    try:
        animation = gateway_animation(payload, namespace, caller.name, config.record_keys,
                                      object_base=config.object_bases.get(namespace))
    except InvalidPayload as err:
        raise problems.invalid_payload(err.problems) from None
    for where, image in inline:  # only once the rest of the payload is valid
        assert config.presigner is not None
        await asyncio.to_thread(config.presigner.put, where, image.data, image.content_type)
    obj, created = await _create(request, caller, namespace, animation)
    if not created:
        may_see = await request.app[_AUTH].allowed(caller, "get", namespace,
                                                   obj["metadata"]["name"])
        return _json(request_view(obj, may_see_url=may_see), 200)
    view = request_view(obj, may_see_url=False)  # nothing to see yet
    return _json(view, 202, {"Location": _location(view.id, namespace)})


async def _body(request: web.Request, limit: int | None = None) -> dict[str, Any]:
    limit = limit or request.app[_CONFIG].max_body_bytes
    check_content_type(request.headers.get("Content-Type"))
    if request.content_length is not None and request.content_length > limit:
        raise problems.too_large(limit)
    raw = await request.read()
    if len(raw) > limit:  # no Content-Length: the app's bound may be POST /animate's
        raise problems.too_large(limit)
    return parse_payload(raw)


def _inline_images(config: GatewayConfig, namespace: str, payload: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[tuple[Destination, data_uris.InlineImage]]]:
    """The payload with its data: URI images replaced by where they will be stored."""
    fields = [f for f in data_uris.DATA_URI_FIELDS if data_uris.is_data_uri(payload.get(f))]
    if not fields:
        if _encoded_size(payload) > config.max_body_bytes:
            raise problems.too_large(config.max_body_bytes)
        return payload, []
    base = config.object_bases.get(namespace)
    if config.presigner is None or base is None:
        message = "inline images need uploads on and an object base for this namespace"
        raise GatewayProblem(403, "inline-images-not-served", "Inline images not served",
                             f"{fields[0]}: {message}",
                             [PayloadProblem(f, message) for f in fields])
    # Only the images may take the body past the payload's own bound.
    if _encoded_size({k: v for k, v in payload.items() if k not in fields}) > (
            config.max_body_bytes):
        raise problems.too_large(config.max_body_bytes)
    images = [data_uris.decode(f, payload[f], config.max_data_uri_bytes) for f in fields]
    placed = [(image.destination(base), image) for image in images]
    return {**payload, **{image.field: where.uri for where, image in placed}}, placed


def _encoded_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


async def _create(request: web.Request, caller: Caller, namespace: str,
                  animation: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the sealed ``animation``, or find the same request made before (then
    ``created`` is False; a cancelled one is its tombstone). 409 for anything else."""
    store, keys = request.app[_STORE], request.app[_CONFIG].record_keys
    meta = animation["metadata"]
    name, original = meta["name"], meta["annotations"][ORIGINAL_ID_ANNOTATION]
    cancelled = await _tombstone(request, namespace, name)
    if cancelled is not None:  # an id once cancelled stays cancelled
        if cancelled[1].requester != caller.name:
            raise problems.id_conflict(original)
        return cancelled[0], False
    for _ in range(2):  # a second try only if the existing one vanished meanwhile
        try:
            created = await store.create(namespace, animation)
        except AlreadyExists:
            existing = await store.get(namespace, name)
            if existing is None:
                continue
            if not is_same_request(existing, animation, keys):
                raise problems.id_conflict(original) from None
            # Pending (not bound to its uid): the gateway stopped before binding it, or a
            # copy of a deleted record; this caller asks for exactly what it holds.
            if (bound := await _bind(request, namespace, existing)) is None:
                continue
            return bound, False
        log.info("%s created %s/%s for id %r", caller.name, namespace, name, original)
        if (bound := await _bind(request, namespace, created)) is None:
            continue
        return bound, True
    raise problems.upstream("the request was deleted while being submitted; retry")


async def _bind(request: web.Request, namespace: str, obj: dict[str, Any]
                ) -> dict[str, Any] | None:
    """``obj`` (a pending record) bound to its uid (records.py); None when it is gone."""
    keys = request.app[_CONFIG].record_keys
    if verified(obj, keys) is not None:
        return obj
    record = pending(obj, keys)
    assert record is not None  # the caller checked it
    meta = obj["metadata"]
    return await request.app[_STORE].annotate(namespace, meta["name"], meta["uid"],
                                              bound_seal(obj, record, keys))


async def _tombstone(request: web.Request, namespace: str, name: str
                     ) -> tuple[dict[str, Any], Record] | None:
    obj = await request.app[_STORE].get(namespace, tombstone_name(name))
    record = is_tombstone_of(obj, name, request.app[_CONFIG].record_keys) if obj else None
    return (obj, record) if obj is not None and record is not None else None


async def _status(request: web.Request) -> web.Response:
    original = request.match_info["id"]
    _, namespace = await _authorised(request, "get", name_from_id(original))
    obj = await _find(request, namespace, original)
    return _json(request_view(obj, may_see_url=True))


async def _events(request: web.Request) -> web.StreamResponse:
    """The request's server-sent events, as GET /animate/{id} is authorised and answered."""
    original = request.match_info["id"]
    caller, namespace = await _authorised(request, "get", name_from_id(original))
    obj = await _find(request, namespace, original)
    last_event_id = request.headers.get("Last-Event-ID")
    if (last_event_id == obj["metadata"]["resourceVersion"]
            and request_view(obj, may_see_url=False).phase in events.FINAL_PHASES):
        return web.Response(status=204)  # seen its end already: EventSource stops on 204
    slots = request.app[_STREAMS]
    if not slots.take(caller.name):
        raise problems.too_many_streams(slots.limit)
    try:
        response = web.StreamResponse(headers={
            "Content-Type": events.MEDIA_TYPE, "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})  # proxies: pass each event on at once
        await response.prepare(request)
        keys = request.app[_CONFIG].record_keys

        async def reread() -> dict[str, Any] | None:
            try:
                return await _find(request, namespace, original)
            except GatewayProblem:
                return None

        try:
            await streams.follow(response, request.app[_STORE], obj, last_event_id, reread,
                                 lambda changed: verified(changed, keys) is not None)
            await response.write_eof()
        except ConnectionError:  # the client left
            pass
        return response
    finally:
        slots.give_back(caller.name)


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


async def _upload(request: web.Request) -> web.Response:
    """An S3 POST policy for one file inside the caller's namespace (who may create
    Animations there may upload their inputs)."""
    _, namespace = await _authorised(request, "create")
    config = request.app[_CONFIG]
    body = await _body(request)
    try:
        asked = UploadRequest.model_validate(body)
    except ValidationError as err:
        raise problems.invalid_payload([
            PayloadProblem(".".join(str(p) for p in e["loc"]) or "payload", e["msg"])
            for e in err.errors()]) from None
    if config.presigner is None:
        raise GatewayProblem(404, "uploads-not-offered", "Uploads not offered",
                             "this gateway has no S3 keys to sign uploads with")
    where = destination(asked, config.object_bases.get(namespace), config.max_upload_bytes)
    return _json(config.presigner.grant(where, asked.content_type, asked.size), 201)


async def _openapi(request: web.Request) -> web.Response:
    config = request.app[_CONFIG]
    return web.json_response(openapi_document(config.max_body_bytes,
                                              config.runsync_wait_seconds))


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


# -- RunPod's routes ----------------------------------------------------------------------


async def _run(request: web.Request) -> web.Response:
    _, _, obj, cancelled = await _runpod_submit(request)
    state = runpod.job_state(obj, cancelled=cancelled)
    return web.json_response({"id": runpod.job_id(obj), "status": state})


async def _runsync(request: web.Request) -> web.Response:
    caller, namespace, obj, cancelled = await _runpod_submit(request)
    bound = request.app[_CONFIG].runsync_wait_seconds
    wait = request.query.get("wait")
    if wait is not None:
        if not wait.isdigit() or len(wait) > 9:
            raise bad_request("wait", "must be a whole number of milliseconds")
        bound = min(bound, int(wait) / 1000)
    deadline = asyncio.get_running_loop().time() + bound
    name = runpod.job_id(obj)
    while (not cancelled and runpod.job_state(obj) not in runpod.TERMINAL
           and asyncio.get_running_loop().time() < deadline):
        await asyncio.sleep(min(RUNSYNC_POLL_SECONDS,
                                max(0.0, deadline - asyncio.get_running_loop().time())))
        found = await request.app[_STORE].get(namespace, name)
        if found is None:  # cancelled (or deleted) meanwhile
            cancelled = await _tombstone(request, namespace, name) is not None
            if not cancelled:
                raise problems.not_found(name, namespace)
            break
        obj = found
    may_see = await request.app[_AUTH].allowed(caller, "get", namespace, name)
    return _json(runpod.job_status(obj, may_see_url=may_see, cancelled=cancelled))


async def _runpod_submit(request: web.Request) -> tuple[Caller, str, dict[str, Any], bool]:
    """Authorise, parse the envelope, create (or find) the request: the caller, namespace,
    the Animation (or its tombstone) and whether it was cancelled. A bad body is 400 with
    RunPod's FAILED and the fields at fault, named as in the body (``input.seed``)."""
    caller, namespace = await _authorised(request, "create")
    try:
        body = await _body(request)
        envelope, wrong = runpod.parse_envelope(body)
        if envelope is None:
            raise problems.invalid_payload(wrong)
        config = request.app[_CONFIG]
        if envelope.webhook is not None:
            wrong_url = form_problem(envelope.webhook,
                                     loopback_for_tests=config.webhook_loopback_for_tests)
            if wrong_url:
                raise problems.invalid_payload([PayloadProblem("webhook", wrong_url)])
        overrides = ({"timeoutSeconds": envelope.timeout_seconds}
                     if envelope.timeout_seconds else {})
        try:
            animation = gateway_animation(envelope.payload, namespace, caller.name,
                                          config.record_keys, overrides,
                                          config.object_bases.get(namespace),
                                          envelope.webhook)
        except InvalidPayload as err:
            raise problems.invalid_payload(runpod.input_problems(err.problems)) from None
        obj, _ = await _create(request, caller, namespace, animation)
    except GatewayProblem as problem:
        if problem.status != 400:
            raise
        return_body = runpod.failure(problem.detail, problem.errors)
        raise _RunPodFailure(web.json_response(return_body, status=400)) from None
    cancelled = bool(((obj.get("metadata") or {}).get("annotations") or {}).get(
        CANCELLED_ANNOTATION))
    return caller, namespace, obj, cancelled


class _RunPodFailure(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__("RunPod failure")
        self.response = response


async def _job_status(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    _, namespace = await _authorised(request, "get", _job_name(job_id))
    obj, cancelled = await _find_job(request, namespace, job_id)
    return _json(runpod.job_status(obj, may_see_url=True, cancelled=cancelled))


async def _job_cancel(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    caller, namespace = await _authorised(request, "delete", _job_name(job_id))
    obj, cancelled = await _find_job(request, namespace, job_id)
    if cancelled or runpod.job_state(obj) in runpod.TERMINAL:  # nothing left to stop
        return _json(runpod.job_status(obj, may_see_url=False, cancelled=cancelled))
    keys, store = request.app[_CONFIG].record_keys, request.app[_STORE]
    record = verified(obj, keys)
    assert record is not None  # _find_job verified it
    # The tombstone first: once it exists the request reads CANCELLED, and a cancel that
    # stopped half-way (a crash, a lost connection) is finished by its retry.
    stone = tombstone(obj, record)
    seal_tombstone(stone, record.requester, keys)
    try:
        made: dict[str, Any] | None = await store.create(namespace, stone)
    except AlreadyExists:  # a cancel cut short before: bind it if it is that tombstone
        made = await store.get(namespace, stone["metadata"]["name"])
        if made is not None and is_tombstone_of(made, job_id, keys, bound=False) is None:
            made = None
    if made is None or await _bind(request, namespace, made) is None:
        # Something else holds its name (as before this check): cancel without a record.
        log.warning("%s/%s: the tombstone's name is taken; cancelled without one",
                    namespace, job_id)
    await store.delete(namespace, job_id)
    log.info("%s cancelled %s/%s", caller.name, namespace, job_id)
    return web.json_response({"id": job_id, "status": runpod.CANCELLED})


async def _health(request: web.Request) -> web.Response:
    _, namespace = await _authorised(request, "list")
    keys, store = request.app[_CONFIG].record_keys, request.app[_STORE]
    states: list[str] = []
    token: str | None = None
    for _ in range(HEALTH_MAX_PAGES):
        found, token = await store.list(namespace, f"{GATEWAY_LABEL}=true", MAX_LIST_LIMIT,
                                        token)
        states += [runpod.job_state(obj) for obj in found
                   if verified(obj, keys) and CANCELLED_ANNOTATION not in
                   ((obj.get("metadata") or {}).get("annotations") or {})]
        if not token:
            break
    return _json(runpod.health(states))


async def _find_job(request: web.Request, namespace: str, job_id: str
                    ) -> tuple[dict[str, Any], bool]:
    """The request named ``job_id`` and whether it was cancelled (its tombstone)."""
    cancelled = await _tombstone(request, namespace, job_id)
    if cancelled is not None:
        return cancelled[0], True
    obj = await request.app[_STORE].get(namespace, job_id)
    if obj is None or verified(obj, request.app[_CONFIG].record_keys) is None:
        raise problems.not_found(job_id, namespace)
    return obj, False


def _job_name(job_id: str) -> str:
    if len(job_id) > 63 or not re.fullmatch(NAMESPACE_PATTERN, job_id):
        raise problems.not_found(job_id[:80], "")
    return job_id


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
    endpoint = request.match_info.get("endpoint")  # RunPod's /v2/{endpoint_id}/...
    given = {value for value in (query, header, endpoint) if value}
    if len(given) > 1:
        raise bad_request("namespace", "the path, the query and the X-Namespace header name "
                                       f"different namespaces: {sorted(given)}")
    namespace = endpoint or query or header
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
    except _RunPodFailure as failure:
        return failure.response
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
