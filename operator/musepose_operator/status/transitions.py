"""Status that only moves forward, and one Event per move. Pure: no I/O, no clock reads.

``observe`` describes one snapshot of a Job and its Pods; snapshots can be stale (a cache
not yet filled after a restart, an event still in flight) or show a retry between two pods.
``settle`` turns a snapshot into what the Animation may say given what it already says, so
that within one generation:

* the phase never goes back in the run's order Pending → Queued → Running → Succeeded or
  Failed (Suspended, set by the user, stands outside the order), and a finished run's
  status is final;
* ``attempts`` never decreases and ``progress`` never decreases within one attempt.

Which Event a status change announces is also derived from the status (``announcement``),
never from the process's memory, so a restarted operator does not announce again what the
status already shows; ``event_name`` makes the Event itself idempotent across restarts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from musepose_operator.api import Phase
from musepose_operator.base.types import Obj
from musepose_operator.status.mapping import Observation

RANK = {Phase.PENDING: 0, Phase.QUEUED: 1, Phase.RUNNING: 2, Phase.SUCCEEDED: 3,
        Phase.FAILED: 3}
RETRYING = "Retrying"
DISRUPTED = "Disrupted"


def _phase(value: Any) -> Phase | None:
    try:
        return Phase(value)
    except ValueError:
        return None


def _percent(progress: Obj | None) -> int:
    return int((progress or {}).get("percent") or 0)


def settle(previous: Obj, generation: int, seen: Observation) -> Observation | None:
    """What to write given the status already written (``previous``) and a new snapshot.

    None means "leave the status alone": it already shows the end of this generation's run.
    """
    if previous.get("observedGeneration") != generation:
        return seen  # a new generation starts its own run
    before = _phase(previous.get("phase"))
    if before is None:
        return seen
    if before.terminal:
        return None
    attempts_before = int(previous.get("attempts") or 0)
    attempts = max(seen.attempts, attempts_before)
    settled = dataclasses.replace(
        seen, attempts=attempts,
        start_time=seen.start_time or previous.get("startTime"))
    if Phase.SUSPENDED in (before, seen.phase):
        return settled  # only the user suspends and resumes: follow them
    if RANK[seen.phase] < RANK[before]:
        # A retry between two pods, a Kueue preemption, or a view older than the status:
        # the run does not go back in time; reason and message say what is happening now.
        reason = RETRYING if seen.reason == "JobCreated" and before is Phase.RUNNING \
            else seen.reason
        settled = dataclasses.replace(settled, phase=before, reason=reason)
    if (settled.phase is Phase.RUNNING and before is Phase.RUNNING
            and attempts == attempts_before and settled.reason == previous.get("reason")
            and _percent(settled.progress) < _percent(previous.get("progress"))):
        # The same attempt cannot un-make frames: this view of the pod is older.
        settled = dataclasses.replace(settled, progress=previous.get("progress"),
                                      message=str(previous.get("message") or seen.message))
    return settled


def announcement(previous: Obj, new: Obj) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Event that moving from ``previous`` to ``new``
    announces, or None. A move is a new generation or a new (phase, reason): queue places,
    progress and messages within one step are status updates, not Events."""
    if new.get("reason") == DISRUPTED:
        return None  # each disrupted pod has its own Event, from the pod's watch (disruptions)
    same_generation = previous.get("observedGeneration") == new.get("observedGeneration")
    if same_generation and (previous.get("phase"), previous.get("reason")) == (
            new.get("phase"), new.get("reason")):
        return None
    kind = "Warning" if new.get("phase") == Phase.FAILED.value else "Normal"
    return kind, str(new.get("reason") or new.get("phase")), str(new.get("message") or "")


def event_name(name: str, uid: str, *parts: Any) -> str:
    """A deterministic Event name for one announcement of one Animation: creating it again
    (a pass repeated after a restart) is answered 409 instead of making a duplicate."""
    digest = hashlib.sha256("/".join([uid, *map(str, parts)]).encode()).hexdigest()[:16]
    return f"{name[:253 - 17]}.{digest}"
