"""Whether the model files are ready in a namespace, from the chart's ``weights pull`` Job.

With ``weights.pull`` enabled the chart runs, in every runner namespace, a Job named in the
settings (``weights_pull_job``) that fills the weights volume. Until that Job is Complete
there, runner Jobs would fail with exit 78 (files missing) or read a half-filled volume, so
the operator starts none: the Animation waits in Pending with reason ``WaitingForWeights``
and one Event that says what to do, and starts by itself once the Job has completed.

How the operator learns it: it reads that one Job by name (``get jobs``, which it already
may do in runner namespaces; no new permission, no access to the volume), at most every
``RECHECK_SECONDS`` per namespace while it is not ready, and never again once it is.

Why that Job can be trusted (issue 30): a tenant of the namespace may create Jobs there,
and the API server records no creator; labels, annotations and field managers are a
tenant's to copy, and ownerReferences may name any uid. What the tenant cannot do is pass
admission: the chart's ValidatingAdmissionPolicy (``vap-weights-pull.yaml``) reserves every
name ``<fullname>-weights-pull-<number>`` in the runner namespaces for whoever may
patch the release's operator Deployment (helm, a GitOps controller: never a tenant). So a
Job by this name is the chart's: a tenant's own ``kubectl create job`` of it is refused
(403) and never exists to be Complete. The chart's Job cannot be turned into another: its
pod template is immutable, and its status is the Job controller's (tenants' edit and admin
roles hold no ``jobs/status``). What this rests on: the policy being enforced (Kubernetes
>= 1.30, ``weights.pull.enabled``; the chart installs it with the Job), and that no tenant
may patch the operator's Deployment. A tenant may still delete the chart's Job, which only
closes its own namespace's gate again until the next ``helm upgrade``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from musepose_operator.base.types import Obj

WAITING_REASON = "WaitingForWeights"
RECHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    message: str  # what the user reads (the Pending status and the Event)


def _condition(job: Obj, kind: str) -> Obj | None:
    for found in (job.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind and found.get("status") == "True":
            return dict(found)
    return None


def readiness(job: Obj | None, namespace: str, name: str) -> Readiness:
    """Pure: what the pull Job's state means for Animations in ``namespace``."""
    where = f"Job {namespace}/{name}"
    if job is None:
        return Readiness(False, f"waiting for the model files: the weights pull {where} does "
                         "not exist (the chart's weights.pull creates it on install and "
                         "upgrade; run `helm upgrade` or fill the weights volume and unset "
                         "weights.pull)")
    if _condition(job, "Complete"):
        return Readiness(True, f"the weights pull {where} has completed")
    failed = _condition(job, "Failed")
    if failed:
        why = failed.get("message") or failed.get("reason") or "failed"
        return Readiness(False, f"waiting for the model files: the weights pull {where} "
                         f"failed ({why}); see `kubectl -n {namespace} logs job/{name}`, fix "
                         "weights.pull in the chart's values and run `helm upgrade`")
    return Readiness(False, f"waiting for the model files: the weights pull {where} is "
                     f"running (`kubectl -n {namespace} logs -f job/{name}`); the Animation "
                     "starts by itself when it completes")


class WeightsGate:
    """Per namespace, the last answer and when it was read; ``ready`` once is for good."""

    def __init__(self, job_name: str | None,
                 read_job: Callable[[str, str], Awaitable[Obj | None]],
                 clock: Callable[[], float] = time.monotonic,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.job_name = job_name
        self._read_job = read_job
        self._clock = clock
        self._recheck = recheck_seconds
        self._seen: dict[str, tuple[float, Readiness]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}  # uid -> its next look

    @property
    def enabled(self) -> bool:
        return bool(self.job_name)

    async def check(self, namespace: str) -> Readiness:
        if not self.job_name:
            return Readiness(True, "no weights pull Job configured")
        now = self._clock()
        seen = self._seen.get(namespace)
        if seen and (seen[1].ready or now - seen[0] < self._recheck):
            return seen[1]
        answer = readiness(await self._read_job(namespace, self.job_name), namespace,
                           self.job_name)
        self._seen[namespace] = (now, answer)
        return answer

    async def waiting(self, namespace: str, uid: str,
                      again: Callable[[str], None]) -> Readiness | None:
        """None when runner Jobs may start in ``namespace``; else why not, with
        ``again(uid)`` set for the next look."""
        if not self.enabled:
            return None
        answer = await self.check(namespace)
        if answer.ready:
            return None
        self.recheck_later(uid, again)
        return answer

    def recheck_later(self, uid: str, again: Callable[[str], None]) -> None:
        """``again(uid)`` in ``recheck_seconds`` (once, however often asked meanwhile): a
        waiting Animation starts by itself when the pull has completed."""
        if uid not in self._timers:
            self._timers[uid] = asyncio.get_running_loop().call_later(
                self._recheck, self._fire, uid, again)

    def _fire(self, uid: str, again: Callable[[str], None]) -> None:
        self._timers.pop(uid, None)
        again(uid)

    def forget(self, uid: str) -> None:
        timer = self._timers.pop(uid, None)
        if timer is not None:
            timer.cancel()

    def stop(self) -> None:
        for uid in list(self._timers):
            self.forget(uid)
