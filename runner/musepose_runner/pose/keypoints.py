"""The pose of one person in one frame, and the keypoint-file format. Pure.

Body points follow OpenPose's 18-point order; coordinates are pixels of the frame they
came from, with a confidence score per point.

Keypoint file (``motionSequence`` may name one)::

    {"fps": 24, "width": 720, "height": 1280,
     "frames": [{"body": [[x, y, score], ... 18], "hands": [[[x, y, s], ... 21], ...],
                 "face": [[x, y, s], ...]}, ...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

BODY_POINTS = 18
HAND_POINTS = 21
FACE_POINTS = 68
# COCO-WholeBody body order → OpenPose order (neck is the mean of the shoulders).
COCO_TO_OPENPOSE = [0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
# MusePose's detector: a body point is drawn when its score is above 0.3; hand and face
# points scoring below 0.3 are marked missing. Scores are float32 and MusePose compares a
# body score as one number (in float64: float32(0.3) is above 0.3, so it is drawn) but hand
# and face scores as arrays (in float32: float32(0.3) is not below 0.3, so it is kept).
SCORE_THRESHOLD = 0.3
MISSING = -1.0


@dataclass
class Pose:
    body: np.ndarray  # (18, 3): x, y, score
    hands: list[np.ndarray] = field(default_factory=list)  # each (21, 3)
    face: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def visible(self, index: int) -> bool:
        return bool(float(self.body[index, 2]) > SCORE_THRESHOLD)


@dataclass
class NormalisedPose:
    """A pose as MusePose holds it: x and y as fractions of the image's width and height.

    Body points keep their coordinates even when unsure (MusePose measures its part scales
    on them) and ``visible`` says which are drawn; a missing hand or face point is (-1, -1).
    Coordinates are float32, as MusePose's detector makes them: its arithmetic, and so
    which pixel a point lands on, follows that precision.
    """

    body: np.ndarray  # (18, 2)
    visible: np.ndarray  # (18,) bool
    hands: np.ndarray  # (2, 21, 2): the left hand, then the right
    face: np.ndarray  # (F, 2)


def normalise(pose: Pose, width: int, height: int) -> NormalisedPose:
    """Pixels of a ``width`` x ``height`` image (with scores) → MusePose's convention."""
    size = (float(width), float(height))

    def scaled(points: np.ndarray) -> np.ndarray:
        out = points[..., :2].astype(np.float32)
        out[..., 0] /= size[0]
        out[..., 1] /= size[1]
        return out

    def with_missing(points: np.ndarray, count: int | None) -> np.ndarray:
        points = np.asarray(points, np.float32).reshape(-1, 3)
        if count is not None and len(points) != count:
            return np.full((count, 2), MISSING, np.float32)
        out = scaled(points)
        out[points[:, 2] < np.float32(SCORE_THRESHOLD)] = MISSING
        return out

    hands = list(pose.hands[:2])
    hands += [np.zeros((0, 3), np.float32)] * (2 - len(hands))
    return NormalisedPose(
        body=scaled(np.asarray(pose.body, np.float32)),
        visible=np.asarray(pose.body[:, 2], np.float64) > SCORE_THRESHOLD,
        hands=np.stack([with_missing(h, HAND_POINTS) for h in hands]),
        face=with_missing(pose.face, None),
    )


@dataclass
class PoseSequence:
    fps: float
    width: int
    height: int
    frames: list[Pose]


def from_wholebody(points: np.ndarray) -> Pose:
    """133 COCO-WholeBody points (x, y, score) → a Pose."""
    body = np.zeros((BODY_POINTS, 3), np.float32)
    for target, source in enumerate(COCO_TO_OPENPOSE):
        if source >= 0:
            body[target] = points[source]
    body[1, :2] = (points[5, :2] + points[6, :2]) / 2
    # MusePose's neck score is 1 when both shoulders score above 0.3 (float32), else 0.
    body[1, 2] = float(bool((points[[5, 6], 2].astype(np.float32)
                             > np.float32(SCORE_THRESHOLD)).all()))
    return Pose(body, hands=[points[91:112], points[112:133]], face=points[23:91])


def parse_keypoint_file(text: str) -> PoseSequence:
    data = json.loads(text)
    frames = []
    for frame in data["frames"]:
        body = np.asarray(frame["body"], np.float32).reshape(-1, 3)
        if body.shape[0] != BODY_POINTS:
            raise ValueError(f"each frame needs {BODY_POINTS} body points, not {body.shape[0]}")
        hands = [np.asarray(h, np.float32).reshape(-1, 3) for h in frame.get("hands", [])]
        face = np.asarray(frame.get("face", []), np.float32).reshape(-1, 3)
        frames.append(Pose(body, hands, face))
    if not frames:
        raise ValueError("the keypoint file has no frames")
    return PoseSequence(float(data["fps"]), int(data["width"]), int(data["height"]), frames)


def dump_keypoint_file(sequence: PoseSequence) -> str:
    return json.dumps({
        "fps": sequence.fps, "width": sequence.width, "height": sequence.height,
        "frames": [{"body": p.body.round(2).tolist(),
                    "hands": [h.round(2).tolist() for h in p.hands],
                    "face": p.face.round(2).tolist()} for p in sequence.frames],
    })
