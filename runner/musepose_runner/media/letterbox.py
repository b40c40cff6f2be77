"""Letterbox: an image padded to another aspect so that nothing is cut off. Pure geometry
plus one numpy pad.

Before the model resizes its reference and pose frames to the render size, each is padded
(black, centred) to the render size's aspect, so the resize keeps the dancer's proportions
and the whole dancer stays in the picture. At MusePose's own sizes nothing is padded: an
image already of the render aspect is returned as it is (the same array).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A canvas of ``width`` x ``height`` with the image's top-left corner at (left, top)."""

    width: int
    height: int
    left: int
    top: int


def letterbox_box(width: int, height: int, target_width: int, target_height: int) -> Box:
    """The smallest canvas of the target's aspect (to the pixel) that holds the image whole,
    the image centred in it."""
    # Compare aspects exactly, in integers: width/height vs target_width/target_height.
    if width * target_height == height * target_width:
        return Box(width, height, 0, 0)
    if width * target_height > height * target_width:  # wider than the target: pad rows
        canvas_h = -(-width * target_height // target_width)  # ceiling division
        return Box(width, canvas_h, 0, (canvas_h - height) // 2)
    canvas_w = -(-height * target_width // target_height)
    return Box(canvas_w, height, (canvas_w - width) // 2, 0)


def letterbox(image: np.ndarray, target_width: int, target_height: int) -> np.ndarray:
    """``image`` (h, w, channels) padded with black to the target's aspect."""
    height, width = image.shape[:2]
    box = letterbox_box(width, height, target_width, target_height)
    if (box.width, box.height) == (width, height):
        return image
    canvas = np.zeros((box.height, box.width, *image.shape[2:]), image.dtype)
    canvas[box.top:box.top + height, box.left:box.left + width] = image
    return canvas
