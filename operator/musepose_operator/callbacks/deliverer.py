"""Delivering what Animations owe (plan.py), one worker per Animation, state in the cluster.

For each Animation that owes something: read it fresh, send each owed event whose time has
come, and record the outcome in ``status.callbacks`` before the next event; an event still
pending gets a timer for its next attempt. Nothing is kept only in memory: a restarted
operator reads the records and owes what they do not show delivered (the receiver sees
that event again, under the same ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from musepose_operator.admission.callback_targets import target
from musepose_operator.base.timestamps import now
from musepose_operator.base.types import Obj
from musepose_operator.callbacks import plan
from musepose_operator.callbacks.sender import SendLimits, send
from musepose_operator.callbacks.signing import BadSigningSecret, signing_key
from musepose_operator.cluster.kube import Conflict, Kube
from musepose_operator.reconcile.timers import OncePerUid
from musepose_operator.settings import Settings
from musepose_runner.contract.location_rules import parse_allow_list

log = logging.getLogger("musepose_operator.callbacks")
RECORD_RETRIES = 5
PAUSED_RECHECK_SECONDS = 5.0
MAX_WORK_FAILURES = 5  # passes in a row that raised (the API server refusing the record)


class NotRecorded(Exception):
    """The API server dropped status.callbacks: the cluster's CRD predates it."""


class Deliverer:
    def __init__(self, kube: Kube, settings: Settings, paused: Callable[[], bool]) -> None:
        config = settings.callbacks
        self.kube = kube
        self.paused = paused
        self.namespaces = frozenset(config.namespaces)
        self.allowed = parse_allow_list(settings.allowed_https_hosts)
        self.policy = plan.RetryPolicy(config.max_attempts, config.first_retry_seconds,
                                       config.max_retry_seconds, config.max_event_age_seconds)
        self.limits = SendLimits(config.timeout_seconds, config.max_response_bytes,
                                 config.loopback_for_tests)
        self._where: dict[str, tuple[str, str]] = {}  # uid → (namespace, name)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # saw a change while its worker ran
        # Animations whose records the API server dropped (a CRD without status.callbacks):
        # sending again on every event would flood the receiver, so they wait for a restart.
        self._unrecordable: set[str] = set()
        self._failures: dict[str, int] = {}  # uid → passes in a row that raised
        self._timers = OncePerUid(self._start)

    def saw(self, obj: Obj) -> None:
        """A watch event: start the Animation's worker if it owes anything."""
        meta = obj["metadata"]
        uid = str(meta["uid"])
        if not self._owes(obj):
            return
        self._where[uid] = (meta["namespace"], meta["name"])
        self._start(uid)

    def forget(self, uid: str) -> None:
        self._timers.cancel(uid)
        self._where.pop(uid, None)
        self._failures.pop(uid, None)
        self._unrecordable.discard(uid)

    def stop(self) -> None:
        self._timers.stop()
        for task in self._running.values():
            task.cancel()

    def _owes(self, obj: Obj) -> bool:
        return bool(plan.owed(obj, namespace_callbacks=obj["metadata"]["namespace"]
                              in self.namespaces, policy=self.policy, now=now()))

    def _start(self, uid: str) -> None:
        if uid in self._running:
            self._again.add(uid)
            return
        if uid not in self._where or uid in self._unrecordable:
            return
        if self.paused():  # a standby replica: look again once it may be the active one
            self._timers.schedule(uid, PAUSED_RECHECK_SECONDS)
            return
        task = asyncio.get_running_loop().create_task(self._work(uid))
        self._running[uid] = task
        task.add_done_callback(lambda _: self._finished(uid))

    def _finished(self, uid: str) -> None:
        self._running.pop(uid, None)
        if uid in self._again:
            self._again.discard(uid)
            self._start(uid)

    async def _work(self, uid: str) -> None:
        namespace, name = self._where[uid]
        try:
            obj = await self.kube.read_animation(namespace, name)
            if obj is None or obj["metadata"].get("uid") != uid:
                return
            wait = await self._deliver_due(obj)
        except NotRecorded:
            self._unrecordable.add(uid)
            log.error("callbacks of %s/%s: the API server dropped status.callbacks; apply "
                      "this version's CRD (crds/), then restart the operator: nothing more "
                      "is sent for it until then", namespace, name)
            return
        except Exception:  # noqa: BLE001 - the next event or the timer tries again
            self._failures[uid] = failures = self._failures.get(uid, 0) + 1
            if failures >= MAX_WORK_FAILURES:  # a send may have gone out unrecorded each time
                self._unrecordable.add(uid)
                log.exception("callbacks of %s/%s failed %d times in a row; nothing more is "
                              "sent for it until the operator restarts", namespace, name,
                              failures)
                return
            log.exception("callbacks of %s/%s failed; retrying shortly", namespace, name)
            wait = self.policy.first_retry_seconds
        else:
            self._failures.pop(uid, None)
        if wait is not None:
            self._timers.cancel(uid)
            self._timers.schedule(uid, wait)

    async def _deliver_due(self, obj: Obj) -> float | None:
        """Send what is due now, in order; seconds until the next attempt (None: none)."""
        namespace = obj["metadata"]["namespace"]
        secret: dict[str, str] | None = None
        unreadable: str | None = None
        secret_read = False
        waits: list[float] = []
        for event in plan.owed(obj, namespace_callbacks=namespace in self.namespaces,
                               policy=self.policy, now=now()):
            wait = plan.next_attempt(obj, event, now())
            if wait > 0:
                waits.append(wait)
                continue
            if not secret_read:
                secret, unreadable = await self._secret(namespace)
                secret_read = True
            outcome = (plan.Outcome(False, True, unreadable) if unreadable
                       else await self._attempt(obj, event, secret))
            log.info("callback %s of %s/%s: %s", event, namespace, obj["metadata"]["name"],
                     outcome.message)
            obj = await self._record(obj, event, outcome)
            if event in plan.owed(obj, namespace_callbacks=namespace in self.namespaces,
                                  policy=self.policy, now=now()):
                waits.append(plan.next_attempt(obj, event, now()))
        return min(waits) if waits else None

    async def _secret(self, namespace: str) -> tuple[dict[str, str] | None, str | None]:
        """The namespace's callbacks Secret (None: there is none), or why it cannot be read
        (the Role lacks its named get, the API server is away): worth another try."""
        try:
            return await self.kube.read_secret_data(namespace, plan.SECRET_NAME), None
        except Exception as err:  # noqa: BLE001 - said in the record, tried again
            code = getattr(err, "status", None) or type(err).__name__
            return None, (f"cannot read the Secret {plan.SECRET_NAME} ({code}); the "
                          "operator's Role needs get on it by name")

    async def _attempt(self, obj: Obj, event: str, secret: dict[str, str] | None
                       ) -> plan.Outcome:
        if secret is None:  # it may be created yet: worth another try
            return plan.Outcome(False, True, f"no Secret {plan.SECRET_NAME} in the namespace "
                                f"(it holds {plan.SIGNING_KEY}, the signing key)")
        try:
            key = signing_key(secret.get(plan.SIGNING_KEY, ""))
        except BadSigningSecret as err:
            return plan.Outcome(False, True, f"Secret {plan.SECRET_NAME}: {err}")
        delivery = plan.delivery(obj, event, secret)
        if isinstance(delivery, str):
            return plan.Outcome(False, False, delivery)
        checked = target(delivery.url, self.allowed,
                         loopback_for_tests=self.limits.loopback_for_tests)
        if isinstance(checked, str):
            return plan.Outcome(False, False, checked)
        return await send(delivery, checked, key, self.limits)

    async def _record(self, obj: Obj, event: str, outcome: plan.Outcome) -> Obj:
        """``status.callbacks`` with the attempt recorded, on the version read (again on a
        conflict: the record must land, or the event would be sent once more)."""
        meta = obj["metadata"]
        moment = now()
        for _ in range(RECORD_RETRIES):
            records = plan.recorded(obj, event, outcome, self.policy, moment)
            try:
                reply = await self.kube.patch_animation_status(
                    meta["namespace"], meta["name"], {"callbacks": records},
                    meta.get("resourceVersion"))
            except Conflict:
                fresh = await self.kube.read_animation(meta["namespace"], meta["name"])
                if fresh is None or fresh["metadata"].get("uid") != meta.get("uid"):
                    return obj
                if plan.event_id(fresh, event) != plan.event_id(obj, event):
                    return fresh  # a new generation meanwhile: that attempt is history
                obj = fresh
                continue
            kept = {r.get("id") for r in (reply.get("status") or {}).get("callbacks") or []}
            if plan.event_id(obj, event) not in kept:
                raise NotRecorded(f"{meta['namespace']}/{meta['name']}")
            return reply
        raise Conflict(f"{meta['namespace']}/{meta['name']}: callbacks not recorded")
