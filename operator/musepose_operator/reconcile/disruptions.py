"""One Event per disrupted runner pod (eviction, preemption, node loss), told from the pod's
watch rather than from a pass.

A pass only sees a disruption if it lands between the eviction and the replacement pod
running, which the Job makes within a second: under load some evicted runs were never told.
Every change of a pod reaches the watch, so the Event is posted when the pod first shows its
``DisruptionTarget`` condition, named after the pod's uid: seen again (a later update, its
deletion, a restarted operator) it is answered 409 instead of doubled.
"""

from __future__ import annotations

from musepose_operator.base.types import Obj
from musepose_operator.cluster.watch_cache import Views
from musepose_operator.reconcile.status_writer import StatusWriter
from musepose_operator.status.mapping import disruption_of
from musepose_operator.status.transitions import DISRUPTED


def disruption_message(pod: Obj) -> str | None:
    """What the Event says about ``pod``, or None when it was not disrupted."""
    cause = disruption_of(pod)
    if cause is None:
        return None
    name = (pod.get("metadata") or {}).get("name", "?")
    return (f"the runner pod {name} was disrupted ({cause}); the Job starts another, "
            "not counted against retries")


class Disruptions:
    """Tells each disrupted pod once per process (and once in all, by the Event's name)."""

    def __init__(self, views: Views, status: StatusWriter) -> None:
        self.views = views
        self.status = status
        self._told: set[str] = set()  # uids of pods told, until their deletion is seen

    async def saw_pod(self, owner_uid: str, pod: Obj, *, deleted: bool) -> None:
        pod_uid = str((pod.get("metadata") or {}).get("uid") or "")
        if pod_uid in self._told:
            if deleted:
                self._told.discard(pod_uid)
            return
        message = disruption_message(pod)
        animation = self.views.animations.get(owner_uid)
        if message is None or animation is None or not pod_uid:
            return
        await self.status.event(animation, "Normal", DISRUPTED, message, "pod", pod_uid)
        if not deleted:
            self._told.add(pod_uid)
