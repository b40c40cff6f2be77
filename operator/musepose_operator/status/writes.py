"""Whether a new status document is written now, later or not at all. Pure: the caller
passes how long ago the Animation's last status write was.

* nothing new for a reader (``same_status``): no write;
* a change only in what a step says in passing (``routine_change``): no write, it goes out
  with the next change that matters;
* another change within one step (progress, a queue place) shortly after the last write:
  deferred until ``coalescing_window`` after that write;
* a new step (an ``announcement``): written at once, with its Event.
"""

from __future__ import annotations

from dataclasses import dataclass

from musepose_operator.base.types import Obj
from musepose_operator.status.document import coalescing_window, routine_change, same_status
from musepose_operator.status.transitions import announcement


@dataclass(frozen=True)
class WritePlan:
    write: bool
    announce: tuple[str, str, str] | None = None  # (type, reason, message) of its Event
    defer: float = 0.0  # not written now: a pass this many seconds later writes it


def plan_write(old: Obj, new: Obj, *, since_last_write: float | None) -> WritePlan:
    """``since_last_write``: seconds since this Animation's last status write by this
    process (None: none yet)."""
    if same_status(old, new):
        return WritePlan(False)
    told = announcement(old, new)
    if told is None and routine_change(old, new):
        return WritePlan(False)
    if told is None and since_last_write is not None:
        wait = coalescing_window(new) - since_last_write
        if wait > 0:
            return WritePlan(False, defer=wait)
    return WritePlan(True, told)
