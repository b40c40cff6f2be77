"""Sanity of what inputs declare, checked before anything is decoded or any model loads.

Pure: numbers in, ``BadInput`` naming the field out. A keypoint file's or a video's
declared size and frame rate must be finite, positive and within the limits, so a
broken file fails in milliseconds instead of after all the GPU work.
"""

from __future__ import annotations

import math

from musepose_runner.contract.errors import BadInput
from musepose_runner.contract.job_spec import InputLimits
from musepose_runner.pose.keypoints import PoseSequence, parse_keypoint_file

MAX_SIDE = 16384  # px: no decoder or encoder here goes further
MAX_FPS = 1000.0
MAX_KEYPOINT_BYTES = 64 * 1024**2  # a keypoint file is text: 64 MiB is hours of poses


def check_motion_facts(field: str, location: str, *, width: float, height: float,
                       fps: float, limits: InputLimits) -> None:
    """Declared frame size and rate: finite, positive, within the limits."""
    for name, value in (("width", width), ("height", height)):
        if not (isinstance(value, int | float) and math.isfinite(value)) or value <= 0:
            raise BadInput(f"{field} {location}: {name} {value} is not a positive number",
                           reason="InvalidInput", field=field)
        if value > MAX_SIDE or value != int(value):
            raise BadInput(f"{field} {location}: {name} {value} is not a whole number of "
                           f"pixels up to {MAX_SIDE}", reason="InputTooLarge", field=field)
    if width * height > limits.max_image_pixels:
        raise BadInput(f"{field} {location}: {int(width)}x{int(height)} is over the limit of "
                       f"{limits.max_image_pixels} pixels", reason="InputTooLarge",
                       field=field)
    if not (isinstance(fps, int | float) and math.isfinite(fps)) or not 0 < fps <= MAX_FPS:
        raise BadInput(f"{field} {location}: fps {fps} is not a frame rate between 0 and "
                       f"{MAX_FPS:g}", reason="InvalidInput", field=field)


def load_keypoints(field: str, location: str, raw: bytes, limits: InputLimits
                   ) -> PoseSequence:
    """A keypoint file's poses, or BadInput naming the field: never a stray exception."""
    if len(raw) > MAX_KEYPOINT_BYTES:
        raise BadInput(f"{field} {location}: a keypoint file of {len(raw)} bytes is over the "
                       f"limit of {MAX_KEYPOINT_BYTES}", reason="InputTooLarge", field=field)
    try:
        text = raw.decode("utf-8")
        header = _header(text)
        check_motion_facts(field, location, width=header[0], height=header[1], fps=header[2],
                           limits=limits)
        sequence = parse_keypoint_file(text)
    except BadInput:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError,
            RecursionError, UnicodeDecodeError) as err:
        raise BadInput(f"{field} {location}: not a keypoint file: {err}"[:400],
                       reason="InputUndecodable", field=field) from None
    return sequence


def _header(text: str) -> tuple[float, float, float]:
    """width, height, fps as declared (numbers only: a string "24" is not a frame rate)."""
    import json

    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the keypoint file must be a JSON object")
    values = []
    for name in ("width", "height", "fps"):
        if name not in data:
            raise ValueError(f"{name!r} is missing")
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name!r} must be a number, not {value!r}")
        values.append(float(value))
    return values[0], values[1], values[2]
