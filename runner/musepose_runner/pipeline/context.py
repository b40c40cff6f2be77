"""Overlapping context windows for long videos (MusePose's "uniform" schedule). Pure."""

from __future__ import annotations


def padded_length(frames: int, context: int, overlap: int) -> int:
    """Frames after repeating the last pose so the windows tile the video exactly."""
    stride = context - overlap
    return frames + (stride - (frames - context) % stride) % stride


def context_windows(frames: int, context: int, overlap: int) -> list[list[int]]:
    """Windows of ``context`` frames, ``context - overlap`` apart, starting at 0, while a
    window starts before ``frames - overlap``; indices wrap around the end."""
    stride = context - overlap
    windows = []
    start = 0
    while start < frames - overlap or not windows:
        windows.append([(start + i) % frames for i in range(context)])
        start += stride
    return windows
