"""Align a dance's poses to the reference person's body (after MusePose's pose_align).

MusePose rescales the dancer so their body proportions match the reference person's and
moves them to where the reference person stands. This implementation takes the scale from
the ratio of body sizes (neck to mid-hip, and shoulder width) in the first frame where the
dancer is visible, and the offset from the neck positions, and applies both to every frame,
so the motion keeps its shape. Pure.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from musepose_runner.pose.keypoints import Pose

NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP = 1, 2, 5, 8, 11


def _body_size(pose: Pose) -> float | None:
    needed = (NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP)
    if not all(pose.visible(i) for i in needed):
        return None
    body = pose.body[:, :2]
    torso = np.linalg.norm(body[NECK] - (body[R_HIP] + body[L_HIP]) / 2)
    shoulders = np.linalg.norm(body[R_SHOULDER] - body[L_SHOULDER])
    return float(torso + shoulders) or None


def alignment(reference: Pose, dance: list[Pose]) -> tuple[float, np.ndarray]:
    """(scale, offset) mapping the dancer onto the reference person."""
    ref_size = _body_size(reference)
    first = next((p for p in dance if _body_size(p)), None)
    if ref_size is None or first is None:
        return 1.0, np.zeros(2, np.float32)
    scale = ref_size / (_body_size(first) or ref_size)
    offset = reference.body[NECK, :2] - first.body[NECK, :2] * scale
    return float(scale), offset.astype(np.float32)


def apply(pose: Pose, scale: float, offset: np.ndarray) -> Pose:
    def moved(points: np.ndarray) -> np.ndarray:
        out = points.copy()
        out[:, :2] = points[:, :2] * scale + offset
        return out

    return replace(pose, body=moved(pose.body), hands=[moved(h) for h in pose.hands],
                   face=moved(pose.face))


def align(reference: Pose, dance: list[Pose]) -> list[Pose]:
    scale, offset = alignment(reference, dance)
    return [apply(p, scale, offset) for p in dance]
