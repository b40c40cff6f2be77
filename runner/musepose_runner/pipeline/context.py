"""Overlapping context windows for long videos (MusePose's "uniform" schedule). Pure."""

from __future__ import annotations


def padded_length(frames: int, context: int, overlap: int) -> int:
    """Frames after repeating the last pose so the windows tile the video exactly."""
    stride = context - overlap
    return frames + (stride - (frames - context) % stride) % stride


def context_windows(frames: int, context: int, overlap: int) -> list[list[int]]:
    """MusePose's uniform schedule as its pipeline calls it (step 0, stride 1): all frames
    in one window when they fit; else windows of ``context`` frames, ``context - overlap``
    apart, starting at 0 while a window starts before ``frames - overlap``. Indices wrap
    around the end, so the last window may take frames from the start."""
    if frames <= context:
        return [list(range(frames))]
    return [[(start + i) % frames for i in range(context)]
            for start in range(0, frames - overlap, context - overlap)]
