"""When a run that ran out of GPU memory is retried in lower-VRAM mode. Pure.

Out of memory shows as the runner's own exit (71, reason OutOfMemory, a CUDA allocation
failure it caught) or as the kernel's OOM kill (reason OOMKilled). Either way, unless the
Animation says ``memoryFallback: Never`` or already runs in lower-VRAM mode, its generation
gets one more Job rendering at 512 px (planning.render.lowered); ``status.memoryFallback`` records it, so a restarted
operator knows which Job is the generation's.
"""

from __future__ import annotations

from typing import Any

from musepose_operator.api import AnimationSpec, MemoryFallback, Phase
from musepose_operator.planning.render import lowered, planned_size
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation

OUT_OF_MEMORY_REASONS = frozenset({"OutOfMemory", "OOMKilled"})
REASON = "MemoryFallback"


def in_fallback(status: dict[str, Any], generation: int) -> bool:
    """This generation already runs its lower-VRAM retry."""
    return bool(status.get("memoryFallback")) and status.get("observedGeneration") == generation


def fallback_for(spec: AnimationSpec, settings: Settings, status: dict[str, Any],
                 generation: int, seen: Observation) -> Observation | None:
    """The status to write instead of ``seen`` when the lower-VRAM retry starts now."""
    if seen.phase is not Phase.FAILED or seen.reason not in OUT_OF_MEMORY_REASONS:
        return None
    if spec.memory_fallback == MemoryFallback.NEVER or spec.lower_vram:
        return None
    if in_fallback(status, generation):
        return None  # the retry ran out of memory too: that failure stands
    width, height = planned_size(spec, settings)  # the request's own size
    low_width, low_height = lowered(width, height,
                                    sized=spec.render is not None and spec.render.sized)
    change = f"{width}x{height} -> {low_width}x{low_height}"
    return Observation(
        Phase.RUNNING, REASON,
        f"ran out of GPU memory ({seen.reason}); retrying once in lower-VRAM mode: {change} "
        "(set spec.memoryFallback: Never to fail instead)",
        start_time=seen.start_time, attempts=seen.attempts,
        extras={"memoryFallback": change})
