"""The gateway's OpenAPI 3.1 document, generated from the same pydantic models it validates
payloads with and answers in, so the document cannot drift from the behaviour. Pure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from musepose_operator.gateway.body import JSON_MEDIA_TYPE, MAX_DEPTH, MAX_INT_DIGITS
from musepose_operator.gateway.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from musepose_operator.gateway.problems import ProblemDetails
from musepose_operator.gateway.responses import RequestList, RequestView
from musepose_operator.gateway.runpod import HealthCounts, JobStatus, RunFailure
from musepose_operator.gateway.uploads import UploadGrant, UploadRequest
from musepose_runner.contract.payload import OriginalPayload

NAMESPACE_HEADER = "X-Namespace"
_MODELS: list[type[BaseModel]] = [OriginalPayload, RequestView, RequestList, ProblemDetails,
                                  JobStatus, RunFailure, HealthCounts, UploadRequest,
                                  UploadGrant]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], media: str = JSON_MEDIA_TYPE) -> dict[str, Any]:
    return {"content": {media: {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, **_json(ProblemDetails, PROBLEM_MEDIA_TYPE)}


_NAMESPACE_PARAMS = [
    {"name": "namespace", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Namespace of the request (or the X-Namespace header). Default: the "
                    "API key's only namespace, else the gateway's default namespace."},
    {"name": NAMESPACE_HEADER, "in": "header", "required": False,
     "schema": {"type": "string"}},
]
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "The payload's id (URL-encoded)."}
_AUTH_ERRORS = {
    "401": _problem("No valid credentials (a Kubernetes bearer token or an API key)."),
    "403": _problem("The caller may not do this in that namespace."),
    "503": _problem("The Kubernetes API could not be reached; retry later."),
}


_RUN_BODY = {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": {
    "type": "object", "required": ["input"],
    "properties": {
        "input": _ref(OriginalPayload),
        "webhook": {"type": "string", "format": "uri", "description": "https URL that "
                    "receives the final status (as /status answers it) by POST, signed "
                    "(Standard Webhooks); its host must be on the operator's allow-list."},
        "policy": {"type": "object", "properties": {
            "executionTimeout": {"type": "integer", "description": "Milliseconds; becomes "
                                 "spec.timeoutSeconds (rounded up, at least 60 s)."},
            "ttl": {"type": "integer", "description": "Milliseconds; accepted, not applied."},
            "lowPriority": {"type": "boolean", "description": "Accepted, not applied."}}}},
}}}}
_JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The job id /run answered (the Animation's name)."}
_RUN_FAILED = {"description": "The body or its input is invalid: status FAILED and every "
                              "field at fault (input.<field>, webhook, policy.*).",
               **_json(RunFailure)}


def _runpod_paths(prefix: str, wait_seconds: str) -> dict[str, Any]:
    params = ([{"name": "endpoint", "in": "path", "required": True,
                "schema": {"type": "string"},
                "description": "The namespace (RunPod's endpoint id)."}] if prefix
              else _NAMESPACE_PARAMS)
    return {
        f"{prefix}/run": {"post": {
            "summary": "RunPod: submit {input: payload}; answers {id, status: IN_QUEUE}",
            "parameters": params, "requestBody": _RUN_BODY,
            "responses": {"200": {"description": "The job (the same id and payload again: "
                                                 "that job).", **_json(JobStatus)},
                          "400": _RUN_FAILED,
                          "409": _problem("The payload id is used by another request."),
                          **_AUTH_ERRORS}}},
        f"{prefix}/runsync": {"post": {
            "summary": f"RunPod: submit and wait up to {wait_seconds} (or ?wait=ms) for the "
                       "result; then answers like /status",
            "parameters": [*params, {"name": "wait", "in": "query", "required": False,
                                     "schema": {"type": "integer"}}],
            "requestBody": _RUN_BODY,
            "responses": {"200": {"description": "COMPLETED/FAILED/TIMED_OUT, or IN_QUEUE/"
                                                 "IN_PROGRESS with the id to poll.",
                                  **_json(JobStatus)},
                          "400": _RUN_FAILED, **_AUTH_ERRORS}}},
        f"{prefix}/status/{{id}}": {"get": {
            "summary": "RunPod: the job's status, timings and output",
            "parameters": [*params, _JOB_ID],
            "responses": {"200": {"description": "The job.", **_json(JobStatus)},
                          "404": _problem("No such job."), **_AUTH_ERRORS}}},
        f"{prefix}/cancel/{{id}}": {"post": {
            "summary": "RunPod: cancel; the job stays visible as CANCELLED",
            "parameters": [*params, _JOB_ID],
            "responses": {"200": {"description": "CANCELLED (or its final status when it "
                                                 "had already ended).", **_json(JobStatus)},
                          "404": _problem("No such job."), **_AUTH_ERRORS}}},
        f"{prefix}/health": {"get": {
            "summary": "RunPod: job counts of the namespace's requests, workers running",
            "parameters": params,
            "responses": {"200": {"description": "Counts.", **_json(HealthCounts)},
                          **_AUTH_ERRORS}}},
    }


def openapi_document(max_body_bytes: int, runsync_wait_seconds: float = 90.0
                     ) -> dict[str, Any]:
    wait = f"{runsync_wait_seconds:g} s"
    _, defs = models_json_schema([(m, "validation") for m in _MODELS],
                                 ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MusePose gateway",
            "version": "v1",
            "description": (
                "The original MusePose endpoint on top of Animation resources. Authenticate "
                "with a Kubernetes bearer token (kubectl create token) or an API key "
                "(X-API-Key). Errors are RFC 9457 problem details naming the payload field."
            ),
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "kubernetesToken": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"kubernetesToken": []}, {"apiKey": []}],
        "paths": {
            "/animate": {"post": _submit(max_body_bytes), "get": _list()},
            "/animate/{id}": _request(),
            "/animate/{id}/events": _events(),
            "/uploads": {"post": _uploads()},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [],
                                 "responses": {"200": {"description": "ok"}}}},
            **_runpod_paths("", wait),
            **_runpod_paths("/v2/{endpoint}", wait),
        },
    }


def _submit(max_body_bytes: int) -> dict[str, Any]:
    """POST /animate."""
    return {
        "summary": "Submit a payload: creates an Animation",
        "parameters": _NAMESPACE_PARAMS,
        "requestBody": {"required": True, **_json(OriginalPayload)},
        "responses": {
            "202": {"description": "Accepted; Location is where to poll.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    **_json(RequestView)},
            "200": {"description": "The same id and payload were submitted "
                                   "before by this caller: that request.",
                    **_json(RequestView)},
            "400": _problem(
                "Invalid payload: every field at fault is named. Also bodies "
                f"that are not UTF-8, nested deeper than {MAX_DEPTH} levels, or "
                f"hold integers longer than {MAX_INT_DIGITS} digits."),
            "409": _problem("The id is already used by another request."),
            "413": _problem(f"The body is larger than {max_body_bytes} bytes."),
            "415": _problem("The body is not application/json."),
            **_AUTH_ERRORS,
        },
    }


def _list() -> dict[str, Any]:
    """GET /animate."""
    return {
        "summary": "The caller's requests in a namespace, newest pages first",
        "parameters": [
            *_NAMESPACE_PARAMS,
            {"name": "phase", "in": "query", "required": False,
             "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "continue", "in": "query", "required": False,
             "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "The requests.", **_json(RequestList)},
                      "400": _problem("A bad query parameter."), **_AUTH_ERRORS},
    }


def _request() -> dict[str, Any]:
    """/animate/{id}: read or cancel one request."""
    return {
        "parameters": [_ID_PARAM, *_NAMESPACE_PARAMS],
        "get": {
            "summary": "Status of a request: phase, progress, ETA, output",
            "responses": {"200": {"description": "The request.", **_json(RequestView)},
                          "404": _problem("No request with that id."), **_AUTH_ERRORS},
        },
        "delete": {
            "summary": "Cancel a request: deletes the Animation, which stops its Job",
            "responses": {"202": {"description": "Cancelling.", **_json(RequestView)},
                          "404": _problem("No request with that id."), **_AUTH_ERRORS},
        },
    }


def _events() -> dict[str, Any]:
    """GET /animate/{id}/events: server-sent events (gateway/events.py)."""
    return {"get": {
        "summary": "The request's progress as server-sent events, until it ends",
        "description": (
            "text/event-stream. `event: status` (data: the request as GET /animate/{id} "
            "answers it: phase, progress with stage, percent, frames, ETA and queue "
            "position) at each change; `event: done` with the final one (Succeeded or "
            "Failed), or `event: cancelled` when it is cancelled; then the stream ends. "
            "Each event's id is the Animation's resourceVersion: reconnect with "
            "Last-Event-ID (EventSource does) and only newer states are sent, also by a "
            "restarted gateway. Comment lines keep an idle stream open."),
        "parameters": [_ID_PARAM, *_NAMESPACE_PARAMS,
                       {"name": "Last-Event-ID", "in": "header", "required": False,
                        "schema": {"type": "string"},
                        "description": "The id of the last event received."}],
        "responses": {
            "200": {"description": "The event stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "204": {"description": "Last-Event-ID is the request's final state: nothing "
                                   "more will come (EventSource stops reconnecting)."},
            "404": _problem("No request with that id."),
            "429": _problem("The caller holds the most event streams allowed at once."),
            **_AUTH_ERRORS,
        },
    }}


def _uploads() -> dict[str, Any]:
    """POST /uploads."""
    return {
        "summary": "Permission to upload one input file straight to the object store",
        "description": (
            "An S3 POST policy (multipart form: the fields as given, then the file as "
            "'file') for one object in the namespace's uploads folder, bounded by the store "
            "itself to that key, content type and exact size, valid for a few minutes. Use "
            "`uri` in the payload. Needs `create` on Animations in the namespace."),
        "parameters": _NAMESPACE_PARAMS,
        "requestBody": {"required": True, **_json(UploadRequest)},
        "responses": {
            "201": {"description": "The policy.", **_json(UploadGrant)},
            "400": _problem("A malformed request."),
            "403": _problem("The name lies outside the namespace's uploads folder "
                            "(outside-scope), or the caller may not create there."),
            "404": _problem("This gateway offers no uploads (no S3 keys)."),
            "413": _problem("The file is larger than the gateway's bound."),
            "415": _problem("A content type the runner does not read."),
            "401": _AUTH_ERRORS["401"], "503": _AUTH_ERRORS["503"],
        },
    }
