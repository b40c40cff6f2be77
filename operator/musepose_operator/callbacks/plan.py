"""Which callbacks an Animation owes, what each one says, and what its status records about
them. Pure: the caller passes the Animation as read, the clock and the namespace's Secret.

Events, each at most once per generation, in this order:

* ``start``: the run started (``status.startTime``): the original's ``INFERENCE_URL``;
* ``uploaded``: the video is written (phase Succeeded): ``UPLOAD_URL``;
* ``failed``: phase Failed: ``exception_url``;
* ``webhook``: the request ended either way and carries a per-request webhook (RunPod's
  ``webhook``, kept in the ``musepose.io/webhook`` annotation): RunPod's final status.

The first three only in namespaces the operator's ``callbacks.namespaces`` names. What was
delivered lives in ``status.callbacks`` (one record per event), so a restarted operator
owes exactly what is not recorded as delivered or given up: at least once, never lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from musepose_operator.api.constants import ORIGINAL_ID_ANNOTATION
from musepose_operator.base.timestamps import format_time, parse_time
from musepose_operator.base.types import Obj
from musepose_operator.gateway.records import OUTPUT_PATH_ANNOTATION, WEBHOOK_ANNOTATION
from musepose_operator.gateway.runpod import job_status

START, UPLOADED, FAILED, WEBHOOK = "start", "uploaded", "failed", "webhook"
PENDING, DELIVERED, GAVE_UP = "Pending", "Delivered", "Failed"
# The namespace's Secret (``callbacks.namespaces``): the original worker's environment
# variables as keys, so ``kubectl create secret generic musepose-callbacks
# --from-env-file=<its .env>`` carries a deployment over; WEBHOOK_SECRET signs.
SECRET_NAME = "musepose-callbacks"
SIGNING_KEY = "WEBHOOK_SECRET"
URL_KEYS = {START: ("INFERENCE_URL", "INFERENCE_API_KEY"),
            UPLOADED: ("UPLOAD_URL", "UPLOAD_API_KEY"),
            FAILED: ("exception_url", "exception_api_key")}
MAX_MESSAGE = 300


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_retry_seconds: float = 5.0
    max_retry_seconds: float = 600.0
    # An event older than this is not sent (a namespace that turns callbacks on does not
    # get one for every Animation it finished before).
    max_event_age_seconds: float = 24 * 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try, after ``attempts`` failed ones."""
        return float(min(self.max_retry_seconds,
                         self.first_retry_seconds * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Delivery:
    """One callback to send now."""

    event: str
    id: str  # the webhook-id header: the same on every retry of this event
    url: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool  # not delivered, and worth trying again (5xx, 408, 429, timeouts, resets)
    message: str
    status_code: int | None = None


def event_id(obj: Obj, event: str) -> str:
    meta, status = obj["metadata"], obj.get("status") or {}
    generation = status.get("observedGeneration") or meta.get("generation") or 1
    return f"{meta['uid']}.{generation}.{event}"


def owed(obj: Obj, *, namespace_callbacks: bool, policy: RetryPolicy, now: datetime
         ) -> list[str]:
    """The events ``obj``'s status says happened, in order, whose record is not final."""
    status = obj.get("status") or {}
    meta = obj["metadata"]
    if meta.get("deletionTimestamp") or status.get("observedGeneration") != meta.get(
            "generation", status.get("observedGeneration")):
        return []  # the status describes an older spec: wait for this generation's
    phase = status.get("phase")
    happened: list[tuple[str, Any]] = []
    if namespace_callbacks:
        if status.get("startTime"):
            happened.append((START, status.get("startTime")))
        if phase == "Succeeded":
            happened.append((UPLOADED, status.get("completionTime")))
        elif phase == "Failed":
            happened.append((FAILED, status.get("completionTime") or _transition(status)))
    if phase in ("Succeeded", "Failed") and webhook_url(obj):
        happened.append((WEBHOOK, status.get("completionTime") or _transition(status)))
    records = {r.get("id"): r for r in status.get("callbacks") or []}
    cutoff = now - timedelta(seconds=policy.max_event_age_seconds)
    due = []
    for event, when in happened:
        record = records.get(event_id(obj, event))
        if record is not None and record.get("state") in (DELIVERED, GAVE_UP):
            continue
        if record is None and _older(when, cutoff):
            continue
        due.append(event)
    return due


def next_attempt(obj: Obj, event: str, now: datetime) -> float:
    """Seconds until ``event`` may be tried (0: now)."""
    record = _record(obj, event)
    when = (record or {}).get("nextAttemptTime")
    if not when:
        return 0.0
    return max(0.0, (parse_time(when) - now).total_seconds())


def webhook_url(obj: Obj) -> str | None:
    value = ((obj["metadata"].get("annotations") or {}).get(WEBHOOK_ANNOTATION) or "").strip()
    return value or None


def delivery(obj: Obj, event: str, secret: dict[str, str]) -> Delivery | str:
    """What to send for ``event``, or why it cannot be sent (a key missing from the
    namespace's Secret)."""
    meta, status = obj["metadata"], obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    path = annotations.get(OUTPUT_PATH_ANNOTATION) or (obj.get("spec") or {}).get("output")
    if event == WEBHOOK:
        url = webhook_url(obj)
        assert url is not None
        answer = job_status(obj, may_see_url=False)
        return Delivery(event, event_id(obj, event), url, "application/json",
                        json.dumps(answer.model_dump(mode="json", exclude_none=True)).encode())
    url_key, api_key_key = URL_KEYS[event]
    url = (secret.get(url_key) or "").strip()
    if not url:
        return f"the Secret {SECRET_NAME} has no {url_key}"
    api_key = secret.get(api_key_key, "")
    # The original worker's bodies, byte for byte as ``requests`` encodes them: JSON with
    # json.dumps' default separators, and the failure form-encoded.
    if event == START:
        return Delivery(event, event_id(obj, event), url, "application/json", json.dumps(
            {"apiKey": api_key, "path": path, "step": "handler"}).encode())
    if event == UPLOADED:
        return Delivery(event, event_id(obj, event), url, "application/json", json.dumps(
            {"apiKey": api_key, "path": path}).encode())
    reason = status.get("message") or status.get("reason") or "the run failed"
    return Delivery(event, event_id(obj, event), url, "application/x-www-form-urlencoded",
                    urlencode({"apiKey": api_key, "path": path or "",
                               "id": annotations.get(ORIGINAL_ID_ANNOTATION) or meta["name"],
                               "reason": reason}).encode())


def recorded(obj: Obj, event: str, outcome: Outcome, policy: RetryPolicy, now: datetime
             ) -> list[Obj]:
    """``status.callbacks`` with ``event``'s record after an attempt that ended in
    ``outcome`` (records of other generations go: they are settled history)."""
    current = event_id(obj, event)
    prefix = current.rsplit(".", 1)[0] + "."
    records = [dict(r) for r in (obj.get("status") or {}).get("callbacks") or []
               if str(r.get("id", "")).startswith(prefix) and r.get("id") != current]
    old = _record(obj, event) or {}
    attempts = int(old.get("attempts") or 0) + 1
    record: Obj = {"event": event, "id": current, "attempts": attempts,
                   "lastAttemptTime": format_time(now),
                   "message": outcome.message[:MAX_MESSAGE]}
    if outcome.status_code is not None:
        record["responseStatus"] = outcome.status_code
    if outcome.delivered:
        record["state"] = DELIVERED
    elif outcome.retry and attempts < policy.max_attempts:
        record["state"] = PENDING
        # Milliseconds: a retry a second later must not read as due at once.
        record["nextAttemptTime"] = (now + timedelta(seconds=policy.delay(attempts))
                                     ).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    else:
        record["state"] = GAVE_UP
        if outcome.retry:
            record["message"] = (f"gave up after {attempts} attempts: "
                                 f"{outcome.message}")[:MAX_MESSAGE]
    order = [START, UPLOADED, FAILED, WEBHOOK]
    return sorted([*records, record], key=lambda r: order.index(r["event"])
                  if r.get("event") in order else len(order))


def _record(obj: Obj, event: str) -> Obj | None:
    wanted = event_id(obj, event)
    return next((r for r in (obj.get("status") or {}).get("callbacks") or []
                 if r.get("id") == wanted), None)


def _transition(status: Obj) -> str | None:
    finished = next((c for c in status.get("conditions") or [] if c.get("type") == "Finished"),
                    None)
    return (finished or {}).get("lastTransitionTime")


def _older(when: Any, cutoff: datetime) -> bool:
    if not isinstance(when, str):
        return False
    try:
        return parse_time(when) < cutoff
    except ValueError:
        return False
