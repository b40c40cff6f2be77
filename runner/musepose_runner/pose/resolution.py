"""The image MusePose's pose detector looks at: short side to ``detect_resolution`` (512).

MusePose resizes every image before detection (shorter side to the resolution, both sides
then rounded to a multiple of 64, Lanczos when enlarging, area averaging when shrinking)
and expresses keypoints as fractions of that resized image. Detecting on the same image
gives the same keypoints, and normalising by its size the same numbers.
"""

from __future__ import annotations

import cv2
import numpy as np

DETECT_RESOLUTION = 512


def detection_size(width: int, height: int, resolution: int = DETECT_RESOLUTION
                   ) -> tuple[int, int]:
    """(width, height) of the detector's input for a ``width`` x ``height`` image."""
    k = float(resolution) / min(float(width), float(height))
    return (int(np.round(float(width) * k / 64.0)) * 64,
            int(np.round(float(height) * k / 64.0)) * 64)


def detection_image(image: np.ndarray, resolution: int = DETECT_RESOLUTION) -> np.ndarray:
    height, width = image.shape[:2]
    k = float(resolution) / min(height, width)
    size = detection_size(width, height, resolution)
    interpolation = cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation)
