"""Who runs next: priority first, then first come first served, within concurrency caps.

Pure: the caller keeps the waiting and running sets (fed by watches) and asks ``admit``
(``slots.GpuSlots`` is that caller). The caps count GPUs: an Animation that needs n GPUs
(``QueueEntry.gpus``) takes n slots, and is admitted only when all n are free (gang
admission); with one GPU each, a slot is a running Job.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class QueueEntry:
    """One Animation waiting for a slot. Ordering is the queue order."""

    sort_key: tuple[int, str, str, str]
    uid: str
    namespace: str
    gpus: int = 1  # taken all at once or not at all

    @classmethod
    def of(cls, *, uid: str, namespace: str, name: str, priority: int,
           created: str, gpus: int = 1) -> QueueEntry:
        # Higher priority first, then older first, then by namespace/name for a total order.
        return cls((-priority, created, namespace, name), uid, namespace, gpus)


@dataclass(frozen=True)
class Caps:
    total: int = 0  # 0: no cap
    per_namespace: int = 0

    @property
    def unlimited(self) -> bool:
        return self.total == 0 and self.per_namespace == 0


def admit(waiting: Iterable[QueueEntry], running_namespaces: Iterable[str],
          caps: Caps) -> list[QueueEntry]:
    """The waiting entries that may start now, in queue order.

    ``running_namespaces`` has one item per GPU held (its namespace; one per running Job
    when each takes one GPU). A namespace at its own cap does not block other namespaces
    behind it; the total cap stops everyone: an entry whose GPUs are not all free blocks
    those behind it (no backfill, so a large gang is never starved by small ones), except an
    entry that could never fit under the cap at all, which is passed over.
    """
    return admit_in_order(sorted(waiting), running_namespaces, caps)


def admit_in_order(ordered: Iterable[QueueEntry], running_namespaces: Iterable[str],
                   caps: Caps) -> list[QueueEntry]:
    """``admit`` for entries already in queue order (a ``WaitingQueue``): no sort."""
    per_namespace = Counter(running_namespaces)
    total = sum(per_namespace.values())
    admitted: list[QueueEntry] = []
    for entry in ordered:
        need = entry.gpus
        if caps.total and need > caps.total:
            continue  # never fits: validation should have refused it
        if caps.total and total + need > caps.total:
            break
        if caps.per_namespace and per_namespace[entry.namespace] + need > caps.per_namespace:
            continue
        admitted.append(entry)
        per_namespace[entry.namespace] += need
        total += need
    return admitted


def positions(waiting: Iterable[QueueEntry]) -> dict[str, int]:
    """uid → 1-based place in the queue."""
    return {entry.uid: place for place, entry in enumerate(sorted(waiting), start=1)}


class WaitingQueue:
    """The waiting entries kept in queue order as they arrive: an arrival costs a binary
    search and a list insert instead of a sort of the whole queue (a burst of k arrivals
    used to cost k sorts), and a place in the queue is a binary search."""

    def __init__(self) -> None:
        self._ordered: list[QueueEntry] = []
        self._by_uid: dict[str, QueueEntry] = {}

    def __len__(self) -> int:
        return len(self._ordered)

    def __contains__(self, uid: object) -> bool:
        return uid in self._by_uid

    def __iter__(self) -> Iterator[str]:
        """The uids, in queue order."""
        return (entry.uid for entry in list(self._ordered))

    def get(self, uid: str) -> QueueEntry | None:
        return self._by_uid.get(uid)

    def put(self, entry: QueueEntry) -> None:
        self.pop(entry.uid)
        bisect.insort(self._ordered, entry)
        self._by_uid[entry.uid] = entry

    def pop(self, uid: str) -> QueueEntry | None:
        entry = self._by_uid.pop(uid, None)
        if entry is not None:
            del self._ordered[bisect.bisect_left(self._ordered, entry)]
        return entry

    def ordered(self) -> list[QueueEntry]:
        return self._ordered

    def place(self, uid: str) -> int:
        """1-based place in the queue; 0 when not waiting."""
        entry = self._by_uid.get(uid)
        return 0 if entry is None else bisect.bisect_left(self._ordered, entry) + 1
