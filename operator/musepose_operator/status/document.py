"""The Animation's ``status`` document from a settled Observation. Pure: the caller passes
the clock reading and the output facts (which may need a presigned URL, i.e. I/O)."""

from __future__ import annotations

from typing import Any

from musepose_operator.base.types import Obj
from musepose_operator.status.conditions import desired_conditions, merge_conditions
from musepose_operator.status.mapping import Observation

VALID = ("Valid", "the spec is valid")
# A status change within one step (progress, a queue place) waits until this long after the
# Animation's last status write; a new phase or reason is written at once. Without it a
# 1,000-deep queue rewrote every waiting status each time a slot freed; 2 s still shows a
# 4 s run's progress (tests/integration/test_gateway.py).
STATUS_COALESCE_SECONDS = 2.0
# A place beyond the queue's head changes with every run that starts ahead of it: under a
# cap of 50 GPUs, 1,000 waiting Animations each had their place rewritten about a dozen
# times (bench/operator_scale.py). Those are refreshed less often.
QUEUE_HEAD = 10
DEEP_QUEUE_COALESCE_SECONDS = 30.0


def status_document(previous: Obj, generation: int, seen: Observation, *,
                    job_name: str | None, output: Obj | None, now: str,
                    rejected: tuple[str, str] | None = None) -> Obj:
    """Every field the operator owns under ``status``; None clears a field."""
    accepted_reason, accepted_message = rejected or VALID
    conditions = merge_conditions(
        previous.get("conditions") or [],
        desired_conditions(seen.phase, seen.reason, seen.message, accepted=rejected is None,
                           accepted_reason=accepted_reason,
                           accepted_message=accepted_message),
        generation=generation, now=now,
    )
    progress = seen.progress
    if "queuePosition" in seen.extras:
        place = seen.extras["queuePosition"]
        progress = {"queuePosition": place, "summary": f"queued #{place}"}
    return {
        "observedGeneration": generation,
        "phase": seen.phase.value,
        "reason": seen.reason,
        "message": seen.message,
        "conditions": conditions,
        "progress": progress,
        "jobName": job_name,
        "attempts": seen.attempts or None,
        "startTime": seen.start_time,
        "completionTime": seen.completion_time,
        "output": output,
        # Kept for the generation once set: which Job is the generation's (fallback.py).
        "memoryFallback": seen.extras.get("memoryFallback") or (
            previous.get("memoryFallback")
            if previous.get("observedGeneration") == generation else None),
        "resumedFromStep": seen.extras.get("resumedFromStep"),
        # How many GPUs share the video and how they are packed (planning.parallel).
        "parallelism": seen.extras.get("parallelism"),
        "workers": seen.extras.get("workers"),
        "resumeSecondsSaved": seen.extras.get("resumeSecondsSaved"),
    }


def same_status(old: Obj, new: Obj) -> bool:
    """Equal apart from transition and progress-update times, and absent-vs-None: writing
    ``new`` would tell a reader nothing."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()
                    if v is not None and k not in ("lastTransitionTime", "updatedAt")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return bool(clean({k: old.get(k) for k in new}) == clean(new))


def routine_change(old: Obj, new: Obj) -> bool:
    """Whether ``new`` differs from ``old`` only in what a step says in passing: its message
    (and the conditions repeating it), the attempt count, and before the run starts, the
    Job's start time. Such a change is written with the next one that matters (a new phase,
    reason, progress or queue place), not on its own: under load each was one more write per
    Animation (bench/operator_scale.py)."""
    if (old.get("phase"), old.get("reason")) != (new.get("phase"), new.get("reason")):
        return False
    routine = {"message", "attempts"}
    if new.get("phase") in ("Pending", "Queued"):
        routine.add("startTime")

    def essential(status: Obj) -> Obj:
        kept = {k: v for k, v in status.items() if k not in routine}
        kept["conditions"] = [{k: v for k, v in c.items() if k != "message"}
                              for c in status.get("conditions") or []]
        return kept

    return same_status(essential(old), essential(new))


def coalescing_window(status: Obj) -> float:
    """Seconds after an Animation's last write that a change within one step to ``status``
    (the document about to be written) waits."""
    place = (status.get("progress") or {}).get("queuePosition")
    if status.get("phase") == "Queued" and place and place > QUEUE_HEAD:
        return DEEP_QUEUE_COALESCE_SECONDS
    return STATUS_COALESCE_SECONDS
