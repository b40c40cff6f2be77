"""RunPod's serverless API on top of gateway records: the request envelope and the status
answer, so clients of the original RunPod worker switch by changing the base URL only.

    {"input": <payload>, "webhook"?: url, "policy"?: {"executionTimeout": ms, "ttl": ms}}
    → {"id", "status", "delayTime", "executionTime", "output"?, "error"?}

The RunPod job id is the Animation's name (DNS-safe, so it needs no URL-encoding, and
stable: the same payload id gives the same job). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from musepose_operator.admission.payload import PayloadProblem
from musepose_operator.api.v1alpha1 import AnimationSpec
from musepose_operator.gateway.records import CANCELLED_ANNOTATION, OUTPUT_PATH_ANNOTATION
from musepose_operator.gateway.responses import request_view

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
FAILED, CANCELLED, TIMED_OUT = "FAILED", "CANCELLED", "TIMED_OUT"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})
# The original handler's own answers, kept inside ``output`` for clients that read them.
SUCCEEDED_MESSAGE = "Inference Job Succeed"

_TIMEOUT_FIELD = AnimationSpec.model_fields["timeout_seconds"]
_MIN_TIMEOUT_S = next(m.ge for m in _TIMEOUT_FIELD.metadata if hasattr(m, "ge"))
_MAX_TIMEOUT_S = next(m.le for m in _TIMEOUT_FIELD.metadata if hasattr(m, "le"))


@dataclass(frozen=True)
class Envelope:
    payload: dict[str, Any]
    webhook: str | None
    timeout_seconds: int | None  # policy.executionTimeout, rounded up to whole seconds


def parse_envelope(body: dict[str, Any]) -> tuple[Envelope | None, list[PayloadProblem]]:
    """The envelope's parts, or the problems naming each field (``input``, ``webhook``,
    ``policy.executionTimeout``, ...)."""
    problems: list[PayloadProblem] = []
    payload = body.get("input")
    if not isinstance(payload, dict):
        problems.append(PayloadProblem("input", "is required: a JSON object, the payload"
                        if payload is None else "must be a JSON object, the payload"))
    webhook = body.get("webhook")
    if webhook is not None and not isinstance(webhook, str):
        problems.append(PayloadProblem("webhook", "must be a URL string"))
    policy = body.get("policy") or {}
    timeout: int | None = None
    if not isinstance(policy, dict):
        problems.append(PayloadProblem("policy", "must be a JSON object"))
        policy = {}
    for key in sorted(set(policy) - {"executionTimeout", "ttl", "lowPriority"}):
        problems.append(PayloadProblem(f"policy.{key}", "is not a policy this gateway knows "
                                       "(executionTimeout, ttl, lowPriority)"))
    for key in ("executionTimeout", "ttl"):
        value = policy.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            problems.append(PayloadProblem(f"policy.{key}", "must be a positive integer of "
                                           "milliseconds"))
    execution = policy.get("executionTimeout")
    if isinstance(execution, int) and not isinstance(execution, bool) and execution > 0:
        timeout = math.ceil(execution / 1000)
        if not _MIN_TIMEOUT_S <= timeout <= _MAX_TIMEOUT_S:
            problems.append(PayloadProblem(
                "policy.executionTimeout", f"must be from {_MIN_TIMEOUT_S * 1000} to "
                f"{_MAX_TIMEOUT_S * 1000} ms here (a run needs at least a minute)"))
    if problems:
        return None, problems
    assert isinstance(payload, dict)
    return Envelope(payload, webhook, timeout), []


def input_problems(problems: list[PayloadProblem]) -> list[PayloadProblem]:
    """Payload problems named as fields of ``input``."""
    return [PayloadProblem(p.field if p.field.startswith("input") else f"input.{p.field}",
                           p.message) for p in problems]


class JobOutput(BaseModel):
    statusCode: int = Field(description="200 on success, 500 on failure (the original's).")
    message: str | None = None
    error: str | None = None
    path: str | None = Field(None, description="The payload's output_path.")
    uri: str | None = Field(None, description="Where the MP4 is.")
    presigned_url: str | None = Field(
        None, description="Time-limited download link; only for callers allowed to get it.")
    presigned_url_expires_at: str | None = None
    duration_seconds: float | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    errors: list[dict[str, str]] | None = Field(
        None, description="On failure, the field at fault (payload names).")


class JobStatus(BaseModel):
    """RunPod's job status."""

    id: str = Field(description="The job id: the Animation's name.")
    status: str = Field(description="IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED "
                        "or TIMED_OUT.")
    delayTime: int | None = Field(None, description="Milliseconds from submission to start.")
    executionTime: int | None = Field(None, description="Milliseconds the run took (so far).")
    output: JobOutput | None = None
    error: str | None = Field(None, description="On failure, what to fix.")


class HealthCounts(BaseModel):
    jobs: dict[str, int]
    workers: dict[str, int]


def job_state(obj: dict[str, Any], *, cancelled: bool = False) -> str:
    """RunPod's status name for an Animation's status."""
    if cancelled:
        return CANCELLED
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return COMPLETED
    if phase == "Failed":
        return TIMED_OUT if status.get("reason") == "DeadlineExceeded" else FAILED
    if phase == "Running":
        return IN_PROGRESS
    return IN_QUEUE  # Pending, Queued, Suspended


def job_status(obj: dict[str, Any], *, may_see_url: bool, cancelled: bool = False,
               now: datetime | None = None) -> JobStatus:
    view = request_view(obj, may_see_url=may_see_url)
    state = job_state(obj, cancelled=cancelled)
    status = obj.get("status") or {}
    created = _time((obj.get("metadata") or {}).get("creationTimestamp"))
    started = _time(status.get("startTime"))
    ended = _time(status.get("completionTime"))
    now = now or datetime.now(UTC)
    delay = _millis(created, started or (None if state in TERMINAL else now))
    execution = _millis(started, ended or (now if state == IN_PROGRESS else None))
    path = ((obj.get("metadata") or {}).get("annotations") or {}).get(OUTPUT_PATH_ANNOTATION)
    output: JobOutput | None = None
    error: str | None = None
    if state == COMPLETED:
        out = view.output
        output = JobOutput(
            statusCode=200, message=SUCCEEDED_MESSAGE, path=path or (out.uri if out else None),
            uri=out.uri if out else None,
            presigned_url=out.presigned_url if out else None,
            presigned_url_expires_at=out.presigned_url_expires_at if out else None,
            duration_seconds=out.duration_seconds if out else None,
            sha256=out.sha256 if out else None, size_bytes=out.size_bytes if out else None)
    elif state in (FAILED, TIMED_OUT):
        error = view.message or view.reason or "the run failed"
        output = JobOutput(statusCode=500, error=error, path=path)
    elif state == CANCELLED:
        error = "cancelled"
    return JobStatus(id=job_id(obj), status=state,
                     delayTime=delay, executionTime=execution, output=output, error=error)


def job_id(obj: dict[str, Any]) -> str:
    """The request's job id; a tombstone answers for the request it cancelled."""
    meta = obj.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(CANCELLED_ANNOTATION) or meta.get("name"))


class RunFailure(BaseModel):
    """A /run or /runsync body that could not become a job (HTTP 400)."""

    status: str = Field(FAILED, description="Always FAILED.")
    error: str = Field(description="What is wrong, naming the fields.")
    errors: list[dict[str, str]] = Field(description="One {field, message} per field at "
                                         "fault: input.<payload field>, webhook, policy.*")


def failure(detail: str, problems: list[PayloadProblem]) -> dict[str, Any]:
    return RunFailure(error=detail, errors=[{"field": p.field, "message": p.message}
                                            for p in problems]).model_dump()


def health(states: list[str]) -> HealthCounts:
    """RunPod's /health counts, from the states of the namespace's gateway requests.
    ``workers.running`` is the requests running now; the gateway does not know how many GPUs
    wait idle, so ``idle`` is always 0."""
    count = {s: states.count(s) for s in (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED,
                                         TIMED_OUT)}
    return HealthCounts(
        jobs={"completed": count[COMPLETED], "failed": count[FAILED] + count[TIMED_OUT],
              "inProgress": count[IN_PROGRESS], "inQueue": count[IN_QUEUE], "retried": 0},
        workers={"idle": 0, "running": count[IN_PROGRESS]})


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _millis(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))
