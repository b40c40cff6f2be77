"""Who runs next: priority first, then first come first served, within concurrency caps.

Pure: the caller keeps the waiting and running sets (fed by watches) and asks ``admit``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class QueueEntry:
    """One Animation waiting for a slot. Ordering is the queue order."""

    sort_key: tuple[int, str, str, str]
    uid: str
    namespace: str

    @classmethod
    def of(cls, *, uid: str, namespace: str, name: str, priority: int,
           created: str) -> QueueEntry:
        # Higher priority first, then older first, then by namespace/name for a total order.
        return cls((-priority, created, namespace, name), uid, namespace)


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

    ``running_namespaces`` has one item per running Job (its namespace). A namespace at its
    own cap does not block other namespaces behind it; the total cap stops everyone.
    """
    per_namespace = Counter(running_namespaces)
    total = sum(per_namespace.values())
    admitted: list[QueueEntry] = []
    for entry in sorted(waiting):
        if caps.total and total >= caps.total:
            break
        if caps.per_namespace and per_namespace[entry.namespace] >= caps.per_namespace:
            continue
        admitted.append(entry)
        per_namespace[entry.namespace] += 1
        total += 1
    return admitted


def positions(waiting: Iterable[QueueEntry]) -> dict[str, int]:
    """uid → 1-based place in the queue."""
    return {entry.uid: place for place, entry in enumerate(sorted(waiting), start=1)}
