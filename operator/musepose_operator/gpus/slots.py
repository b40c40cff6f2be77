"""GPU slots and the waiting queue: who holds GPUs, who waits for them, who starts next.

Synchronous and free of Kubernetes calls (the reconciler, the bench and unit tests use it
directly). An Animation *claims* its GPUs before its Job is made: it joins the queue, and
is admitted only when the caps (``queueing.Caps``, counted in GPUs) leave room for all of
them at once. A running Job *holds* its GPUs; it *releases* them when its run is over.
``keeps_gpus`` is the one rule for whether a Job still holds them.

The reconciler reads an ``Offer`` (what a claim would give, changing nothing) while it
gathers, decides on it, and hands its ``GpuChange`` to ``GpuSlots.apply``: the one door
through which a pass holds, claims or frees GPUs.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from musepose_operator.base.types import Obj
from musepose_operator.gpus.queueing import Caps, QueueEntry, WaitingQueue, admit_in_order
from musepose_operator.status.mapping import runner_done

FINISHED_JOB_CONDITIONS = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")


@dataclass(frozen=True)
class Offer:
    """What claiming ``entry``'s GPUs gives now: ``granted`` (it holds them), else its
    1-based ``place`` in the queue and the GPUs its namespace could take (``free``)."""

    entry: QueueEntry
    granted: bool
    place: int = 0
    free: int = 0
    version: int = field(default=-1, compare=False)  # the slots' version it was read at


@dataclass(frozen=True)
class Hold:
    """The Animation's Job runs: it holds ``gpus`` GPUs whatever the queue says."""

    namespace: str
    gpus: int


@dataclass(frozen=True)
class Claim:
    """Claim the GPUs ``offer`` was read for (joining the queue when not granted)."""

    offer: Offer


@dataclass(frozen=True)
class Release:
    """Free its GPUs and leave the queue."""


RELEASE = Release()
GpuChange = Hold | Claim | Release


def job_finished(job: Obj) -> bool:
    """The Job controller has marked the Job done, either way."""
    return any(c.get("status") == "True" and c.get("type") in FINISHED_JOB_CONDITIONS
               for c in (job.get("status") or {}).get("conditions") or [])


def keeps_gpus(job: Obj | None, pods: list[Obj], *, kueue: bool,
               delete_job: bool = False) -> bool:
    """Whether an Animation holds its GPUs after a pass that saw ``job`` and its ``pods``.

    Only a Job that may still run holds them: none without a Job (suspended before its
    start, rejected, deleted, finished); none for a Job that is finished, suspended, being
    deleted (``delete_job``) or whose latest runner already exited 0 (a queued Animation
    may start while the Job controller catches up); none under Kueue, which counts its own
    quota."""
    if job is None or kueue or delete_job or job_finished(job):
        return False
    if (job.get("spec") or {}).get("suspend"):
        return False
    return not runner_done(pods, job)


class GpuSlots:
    """The GPUs in use and the queue waiting for them.

    ``on_change`` is called when the queue or the free GPUs change in a way that may let
    another Animation start or move in the queue (the operator's queue loop wakes on it).
    """

    def __init__(self, caps: Caps, on_change: Callable[[], None] | None = None) -> None:
        self.caps = caps
        self.waiting = WaitingQueue()  # Animations without their GPUs, in queue order
        self._held: dict[str, tuple[str, int]] = {}  # uid → (namespace, GPUs)
        self._on_change = on_change or (lambda: None)
        # Who may start, computed once per change of waiting/holding: a resync asks for
        # every waiting Animation (bench/operator_bench.py).
        self._admissible: set[str] | None = None
        self._version = 0  # counts those changes: an offer read since is still true

    def __contains__(self, uid: object) -> bool:
        """Whether ``uid`` holds its GPUs."""
        return uid in self._held

    @property
    def holders(self) -> int:
        """How many Animations hold GPUs (running Jobs)."""
        return len(self._held)

    @property
    def gpus_in_use(self) -> int:
        return sum(gpus for _, gpus in self._held.values())

    def apply(self, uid: str, change: GpuChange) -> bool:
        """Carry out a pass's ``change``: False only for a ``Claim`` whose offer went stale
        (the slots changed since it was read, so the pass decides again)."""
        if isinstance(change, Hold):
            self.hold(uid, change.namespace, change.gpus)
            return True
        if isinstance(change, Claim):
            return self.claim(change.offer.entry, change.offer) == change.offer.granted
        self.release(uid)
        return True

    def offer(self, entry: QueueEntry) -> Offer:
        """What ``claim(entry)`` would give now, changing nothing."""
        held = self._held.get(entry.uid)
        if (held is not None and held[1] == entry.gpus) or self.caps.unlimited:
            return Offer(entry, True, version=self._version)
        if held is None and self.waiting.get(entry.uid) == entry:  # as queued: cached
            granted, place = entry.uid in self._admitted(), self.waiting.place(entry.uid)
        else:  # joining, or its entry changed: the queue as the claim would leave it
            queue, before = self.waiting.ordered(), self.waiting.get(entry.uid)
            at = bisect.bisect_left(queue, entry)
            place = at + 1 - (before is not None and before < entry)
            # Read lazily: admission stops at the first entry that does not fit (no copy
            # of a deep queue per arrival).
            would_be = (e for e in itertools.chain(
                itertools.islice(queue, at), (entry,), itertools.islice(queue, at, None))
                if e is entry or e.uid != entry.uid)
            granted = any(e.uid == entry.uid for e in admit_in_order(
                would_be, self._gpu_namespaces(without=entry.uid), self.caps))
        if granted:
            return Offer(entry, True, version=self._version)
        return Offer(entry, False, place, self.free(entry.namespace, without=entry.uid),
                     self._version)

    def claim(self, entry: QueueEntry, offer: Offer | None = None) -> bool:
        """Ask for ``entry.gpus`` GPUs: True when the Animation holds them (now or already);
        False when it waits in the queue (joined, or its entry updated). Holding another
        number of GPUs (spec.parallelism edited, its old Job gone) is a new claim.
        ``offer``: one read for ``entry`` (used while nothing changed since)."""
        if offer is None or offer.entry != entry or offer.version != self._version:
            offer = self.offer(entry)
        granted = offer.granted
        held = self._held.get(entry.uid)
        if held is not None and held[1] == entry.gpus:
            return True
        if held is not None:
            del self._held[entry.uid]
        if self.waiting.get(entry.uid) != entry:
            self.waiting.put(entry)
            self._changed()
            self._on_change()  # the others' queue positions move
        if granted:
            self.hold(entry.uid, entry.namespace, entry.gpus)
        return granted

    def hold(self, uid: str, namespace: str, gpus: int = 1) -> None:
        """``uid``'s Job runs: it holds its GPUs whatever the queue says (a Job found
        running after a restart, say)."""
        self.waiting.pop(uid)
        self._held[uid] = (namespace, gpus)
        self._changed()

    def release(self, uid: str) -> bool:
        """Free ``uid``'s GPUs and take it out of the queue; True when that changed
        anything."""
        freed = self._held.pop(uid, None) is not None
        left = self.waiting.pop(uid) is not None
        if freed or left:
            self._changed()
            self._on_change()
        return freed or left

    def free(self, namespace: str, without: str | None = None) -> int:
        """GPUs an Animation of ``namespace`` could take now under the caps (what a queued
        gang's status says it waits for), not counting those ``without`` holds."""
        held = list(self._gpu_namespaces(without))
        room = [cap - used for cap, used in (
            (self.caps.total, len(held)),
            (self.caps.per_namespace, sum(1 for ns in held if ns == namespace))) if cap]
        return max(0, min(room)) if room else 0

    def position(self, uid: str) -> int:
        """1-based place in the queue; 0 when not waiting."""
        return self.waiting.place(uid)

    def admissible(self) -> list[QueueEntry]:
        """The waiting entries whose GPUs are free now, in queue order."""
        return admit_in_order(self.waiting.ordered(), self._gpu_namespaces(), self.caps)

    def _changed(self) -> None:
        self._admissible = None
        self._version += 1

    def _admitted(self) -> set[str]:
        if self._admissible is None:
            self._admissible = {e.uid for e in self.admissible()}
        return self._admissible

    def _gpu_namespaces(self, without: str | None = None) -> Iterator[str]:
        """One namespace per GPU held (by anyone but ``without``)."""
        return itertools.chain.from_iterable(
            itertools.repeat(namespace, gpus) for uid, (namespace, gpus) in self._held.items()
            if uid != without)
