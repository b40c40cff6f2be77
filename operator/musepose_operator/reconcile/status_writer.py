"""Writing what a pass saw: the status document, its Event, and the metrics they carry.

``StatusWriter.write`` settles the snapshot against the status read
(``status.transitions.settle``), builds the new document, asks ``status.writes.plan_write``
whether it is written now, later (a pass is scheduled then) or not at all, announces a
transition with its Event, and writes only if the Animation is still the version read
(``kube.Conflict`` otherwise: the pass reads again and decides again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from musepose_operator import metrics
from musepose_operator.admission.validation import Rejection
from musepose_operator.api import Phase
from musepose_operator.base.timestamps import format_time, now, parse_time
from musepose_operator.base.types import Obj
from musepose_operator.cluster.kube import Kube
from musepose_operator.cluster.watch_cache import Views
from musepose_operator.reconcile.timers import OncePerUid
from musepose_operator.status.document import status_document
from musepose_operator.status.mapping import Observation
from musepose_operator.status.transitions import event_name, settle
from musepose_operator.status.writes import plan_write

OutputLink = Callable[[Obj, Observation], Obj | None]


async def post_event(kube: Kube, body: Obj, kind: str, reason: str, message: str,
                     *occasion: Any) -> None:
    """An Event named after what it announces (``occasion``: generation, attempt...): a
    pass that repeats it after a crash or a conflict finds it made (409) instead of
    doubling it."""
    meta = body["metadata"]
    name = event_name(meta["name"], meta["uid"], *occasion, reason, message)
    await kube.event(body, kind, reason, message, name=name)


class StatusWriter:
    """``output``: the status's output facts for a settled snapshot (with its download
    link); ``pass_later(uid)``: runs a pass for ``uid`` (a deferred write's)."""

    def __init__(self, kube: Kube, views: Views, output: OutputLink,
                 pass_later: Callable[[str], None]) -> None:
        self.kube = kube
        self.views = views
        self._output = output
        self._written: dict[str, float] = {}  # uid → monotonic time of its last status write
        self._deferred = OncePerUid(pass_later)  # a coalesced change's pass

    async def write(self, body: Obj, status: Obj, generation: int, seen: Observation,
                    wanted_job: str | None, rejected: Rejection | None = None) -> None:
        meta = body["metadata"]
        settled = settle(status, generation, seen)
        if settled is None:
            return
        new = status_document(
            status, generation, settled, job_name=wanted_job,
            output=self._output(body, settled), now=format_time(now()),
            rejected=(rejected.reason, rejected.message) if rejected else None)
        last = self._written.get(meta["uid"])
        plan = plan_write(status, new, since_last_write=None if last is None
                          else time.monotonic() - last)
        if not plan.write:
            if plan.defer > 0:
                self._deferred.schedule(meta["uid"], plan.defer)
            return
        if plan.announce is not None:
            # Before the write: the Event's name is fixed by the transition, so a pass that
            # repeats it after a crash or a conflict finds it made (409) instead of doubling.
            await self._announce(body, generation, settled, plan.announce)
        read_version = meta.get("resourceVersion")
        reply = await self.kube.patch_animation_status(meta["namespace"], meta["name"], new,
                                                       read_version)
        self.views.replace_animation(reply, read_version)
        self._written[meta["uid"]] = time.monotonic()

    async def event(self, body: Obj, kind: str, reason: str, message: str,
                    *occasion: Any) -> None:
        await post_event(self.kube, body, kind, reason, message, *occasion)

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        self._deferred.cancel(uid)

    def stop(self) -> None:
        self._deferred.stop()

    async def _announce(self, body: Obj, generation: int, seen: Observation,
                        told: tuple[str, str, str]) -> None:
        kind, reason, message = told
        if seen.phase is Phase.FAILED:
            metrics.FAILURES.labels(seen.reason).inc()
        if seen.phase is Phase.SUCCEEDED and seen.start_time and seen.completion_time:
            took = parse_time(seen.completion_time) - parse_time(seen.start_time)
            metrics.JOB_DURATION.observe(max(0.0, took.total_seconds()))
        await self.event(body, kind, reason, message, generation, seen.attempts)
