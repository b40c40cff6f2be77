"""metav1.Condition bookkeeping: one summary (phase, reason, message) → every condition type.

``lastTransitionTime`` only moves when a condition's status changes, as the API
conventions ask.
"""

from __future__ import annotations

from typing import Any

from musepose_operator.api import ConditionType as C
from musepose_operator.api import Phase

ConditionDict = dict[str, Any]


def _status(value: bool | None) -> str:
    return "Unknown" if value is None else ("True" if value else "False")


def desired_conditions(
    phase: Phase, reason: str, message: str, *, accepted: bool, accepted_reason: str,
    accepted_message: str,
) -> dict[str, tuple[str, str, str]]:
    """type → (status, reason, message) for a summary of the Animation's state."""
    terminal = phase.terminal
    succeeded = phase is Phase.SUCCEEDED
    failed = phase is Phase.FAILED
    queued = phase is Phase.QUEUED
    running = phase is Phase.RUNNING
    return {
        C.ACCEPTED: (_status(accepted), accepted_reason, accepted_message),
        C.QUEUED: (_status(queued), reason if queued else "NotQueued",
                   message if queued else ""),
        C.RUNNING: (_status(running), reason if running else phase.value,
                    message if running else ""),
        C.SUCCEEDED: (_status(True if succeeded else (False if failed else None)),
                      reason, message),
        C.FAILED: (_status(failed), reason if failed else "NotFailed", message if failed else ""),
        C.FINISHED: (_status(terminal), reason if terminal else "InProgress",
                     message if terminal else "the animation is not finished yet"),
        C.READY: (_status(succeeded), reason, message),
        C.RECONCILING: (_status(not terminal), reason if not terminal else "Finished",
                        message if not terminal else ""),
        C.STALLED: (_status(failed), reason if failed else "NotStalled",
                    message if failed else ""),
    }


def merge_conditions(
    previous: list[ConditionDict], desired: dict[str, tuple[str, str, str]], *,
    generation: int, now: str,
) -> list[ConditionDict]:
    """Desired conditions in a stable order, keeping transition times that did not change."""
    by_type = {c.get("type"): c for c in previous}
    merged: list[ConditionDict] = []
    for type_, (status, reason, message) in desired.items():
        old = by_type.get(type_)
        moved = old is None or old.get("status") != status
        merged.append({
            "type": str(type_),
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now if moved or old is None else old["lastTransitionTime"],
            "observedGeneration": generation,
        })
    return merged
