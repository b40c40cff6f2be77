"""Frames side by side at one height: the pose preview's debug strip and a full run's grid.

Pure (numpy and OpenCV on arrays, no I/O). Each panel keeps its own aspect; widths are even
so the row encodes as H.264 yuv420p.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# MusePose's pose_align.py paints its strip 768 px high; the preview uses 512 to keep the
# CPU pod's encoding cheap (five panels of a portrait video are still 1.5k px wide).
PANEL_HEIGHT = 512


def panel_width(size: tuple[int, int], height: int) -> int:
    """The even width a (width, height) image takes when scaled to ``height``."""
    width, own_height = size
    return max(2, int(height / own_height * width) // 2 * 2)


def row_widths(sizes: Sequence[tuple[int, int]], height: int = PANEL_HEIGHT) -> list[int]:
    """Each panel's width in a row ``height`` high, left to right."""
    return [panel_width(size, height) for size in sizes]


def side_by_side(images: Sequence[np.ndarray], height: int = PANEL_HEIGHT) -> np.ndarray:
    """The RGB ``images`` scaled to ``height`` and joined left to right."""
    widths = row_widths([(i.shape[1], i.shape[0]) for i in images], height)
    return np.concatenate([
        image if image.shape[:2] == (height, width) else cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA)
        for image, width in zip(images, widths, strict=True)], axis=1)
