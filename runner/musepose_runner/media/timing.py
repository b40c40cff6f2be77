"""How the output's frame rate is chosen and how frames are re-timed to it. Pure.

The model renders every (frameSkip+1)-th source frame, so those frames play at the source's
rate divided by frameSkip+1 and last as long as the source. An explicit ``fps`` re-times
them without changing the length in seconds: output frame i shows the rendered frame that
is on screen at time i/fps (frames repeated to go faster, dropped to go slower), so the
video never plays at double speed and its audio stays in sync.
"""

from __future__ import annotations

import math


def rendered_fps(source_fps: float, frame_skip: int) -> float:
    """The rate the rendered frames play at: the source's, divided by frameSkip+1."""
    return source_fps / (frame_skip + 1)


def retimed_indices(count: int, rendered: float, fps: float) -> list[int]:
    """For each output frame at ``fps``, the index of the rendered frame (``count`` of them
    at ``rendered`` fps) on screen at its time; as many as keep the duration the same."""
    if count <= 0:
        return []
    if math.isclose(rendered, fps, rel_tol=1e-9):
        return list(range(count))
    total = max(1, round(count * fps / rendered))
    # A small epsilon keeps i/fps that lands exactly on a rendered frame's start on it.
    return [min(count - 1, math.floor(i * rendered / fps + 1e-9)) for i in range(total)]
