"""Align a dance's poses to the reference person, body part by body part, as MusePose does.

MusePose (``pose_align.py``) measures nine parts on the reference person and on the dancer
in the frame ``align_frame``: neck (nose to neck), face (ear to ear), shoulders, upper and
lower arms, hands, body length (neck to mid-hip), upper and lower legs. Every frame is then
rebuilt outwards from the neck, each part scaled about the joint it hangs from, so limbs
stay attached; finally the dancer's neck is moved onto the reference person's neck and the
pose is expressed in the reference image's coordinates. Pure.

Coordinates: MusePose's normalised ones (``NormalisedPose``). For the measuring, x is
multiplied by the image's width/height, so both axes are in units of the image height.
The arithmetic keeps MusePose's precision step by step (float32 points, float64 scaling,
the scaling centre rounded to float32 as OpenCV's rotation matrix takes it): the aligned
points are the same numbers, so the drawn pixels are the same pixels.

``detect_resolution`` (512) sizes the image the detector sees (``resolution.py``);
MusePose's ``image_resolution`` (720) only sizes its side-by-side demo video, which the
runner does not make.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musepose_runner.pose.keypoints import MISSING, NormalisedPose

NOSE, NECK = 0, 1
R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 8, 9, 10, 11, 12, 13
EYES_EARS = [14, 15, 16, 17]
R_EAR, L_EAR = 16, 17
LEFT_HAND, RIGHT_HAND = 0, 1  # rows of NormalisedPose.hands
FINGER_BASES = [1, 5, 9, 13, 17]  # hand points measured from the wrist (point 0)


@dataclass(frozen=True)
class PartScales:
    """Reference size / dancer size, per part (MusePose's nine ``scale_*`` values)."""

    neck: float
    face: float
    shoulder: float
    arm_upper: float
    arm_lower: float
    hand: float
    body_len: float
    leg_upper: float
    leg_lower: float


@dataclass(frozen=True)
class Alignment:
    """What maps a dance onto the reference person: part scales and the neck-to-neck shift."""

    scales: PartScales
    offset: np.ndarray  # (2,) float32, in units of the image height
    reference_ratio: float  # reference image width / height
    video_ratio: float  # dance video width / height


def _widened(points: np.ndarray, ratio: float) -> np.ndarray:
    out = points.copy()
    out[..., 0] = out[..., 0] * ratio  # float32 stays float32, missing points too
    return out


def _distance(a: np.ndarray, b: np.ndarray) -> np.float32:
    return np.float32(np.linalg.norm(a - b))


def _ratio(reference: np.ndarray, dancer: np.ndarray, a: int, b: int) -> np.float32:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float32(_distance(reference[a], reference[b]) / _distance(dancer[a], dancer[b]))


def _pair(reference: np.ndarray, dancer: np.ndarray, right: tuple[int, int],
          left: tuple[int, int]) -> float:
    # float32 sum, halved exactly: the same number MusePose gets
    return float(_ratio(reference, dancer, *right) + _ratio(reference, dancer, *left)) / 2


def part_scales(reference: NormalisedPose, reference_ratio: float, first: NormalisedPose,
                video_ratio: float) -> PartScales:
    """The nine part scales, measured on the reference and the dancer's align frame.

    Unsure body points count (MusePose keeps their coordinates); a 0/0 part becomes 1; a
    part of size 0 in the dancer only stays infinite: MusePose computes a replacement (the
    mean of the others) but never uses it, so that part's points end up missing."""
    ref, dan = _widened(reference.body, reference_ratio), _widened(first.body, video_ratio)
    ref_hands = _widened(reference.hands, reference_ratio)
    dan_hands = _widened(first.hands, video_ratio)

    arm_upper = _pair(ref, dan, (R_SHOULDER, R_ELBOW), (L_SHOULDER, L_ELBOW))
    arm_lower = _pair(ref, dan, (R_ELBOW, R_WRIST), (L_ELBOW, L_WRIST))
    hand_ratio, hand_count = 0.0, 0
    for side in (LEFT_HAND, RIGHT_HAND):
        for tip in FINGER_BASES:
            # A missing point is (-1, -1) here, so MusePose measures to it; only two missing
            # points (distance 0 in the dancer) are skipped.
            dancer = float(_distance(dan_hands[side, 0], dan_hands[side, tip]))
            if dancer != 0:
                hand_ratio += float(_distance(ref_hands[side, 0], ref_hands[side, tip])) / dancer
                hand_count += 1
    if hand_count:
        hand = (hand_ratio / hand_count + arm_upper + arm_lower) / 3
    else:
        hand = (arm_upper + arm_lower) / 2

    def mid_hip_length(body: np.ndarray) -> np.float32:
        return _distance(body[NECK], (body[R_HIP] + body[L_HIP]) / 2)

    with np.errstate(divide="ignore", invalid="ignore"):
        body_len = np.float32(mid_hip_length(ref) / mid_hip_length(dan))
    values = [
        float(_ratio(ref, dan, NOSE, NECK)),
        float(_ratio(ref, dan, R_EAR, L_EAR)),
        float(_ratio(ref, dan, R_SHOULDER, L_SHOULDER)),
        arm_upper, arm_lower, hand, float(body_len),
        _pair(ref, dan, (R_HIP, R_KNEE), (L_HIP, L_KNEE)),
        _pair(ref, dan, (R_KNEE, R_ANKLE), (L_KNEE, L_ANKLE)),
    ]
    return PartScales(*[1.0 if math.isnan(v) else v for v in values])


def fit(reference: NormalisedPose, reference_size: tuple[int, int], first: NormalisedPose,
        video_size: tuple[int, int]) -> Alignment:
    """Measure the alignment on the reference pose and the dancer's align frame.

    Sizes are (width, height) of the original reference image and dance video."""
    reference_ratio = reference_size[0] / reference_size[1]
    video_ratio = video_size[0] / video_size[1]
    offset = (_widened(reference.body, reference_ratio)[NECK]
              - _widened(first.body, video_ratio)[NECK])
    return Alignment(part_scales(reference, reference_ratio, first, video_ratio), offset,
                     reference_ratio, video_ratio)


def _scaled_about(points: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """``points`` scaled about ``centre`` by the matrix OpenCV's ``getRotationMatrix2D``
    makes for angle 0 (its centre is a float32 point; the map is float64). An infinite
    scale makes the matrix, and so the points, NaN: MusePose then marks them missing."""
    cx, cy = (float(c) for c in np.asarray(centre, np.float32))
    alpha, beta = math.cos(0.0) * scale, math.sin(0.0) * scale  # 0 * inf is NaN
    with np.errstate(invalid="ignore"):
        matrix = np.array([[alpha, beta, (1 - alpha) * cx - beta * cy],
                           [-beta, alpha, beta * cx + (1 - alpha) * cy]])
        return np.dot(np.asarray(points, np.float64), matrix[:, :2].T) + matrix[:, 2]


# The rebuild, in MusePose's order: (points moved, the joint they hang from, part scale).
# With a joint, a point keeps its original offset from that joint (which may have moved)
# and the offset is scaled about the joint; without one, points are scaled about the neck.
_BODY_STEPS: list[tuple[list[int], int | None, str]] = [
    ([NOSE], None, "neck"), (EYES_EARS, NOSE, "face"),
    ([R_SHOULDER, L_SHOULDER], None, "shoulder"),
    ([R_ELBOW], R_SHOULDER, "arm_upper"), ([R_WRIST], R_ELBOW, "arm_lower"),
    ([-1 - RIGHT_HAND], R_WRIST, "hand"),
    ([L_ELBOW], L_SHOULDER, "arm_upper"), ([L_WRIST], L_ELBOW, "arm_lower"),
    ([-1 - LEFT_HAND], L_WRIST, "hand"),
    ([R_HIP, L_HIP], None, "body_len"),
    ([R_KNEE], R_HIP, "leg_upper"), ([R_ANKLE], R_KNEE, "leg_lower"),
    ([L_KNEE], L_HIP, "leg_upper"), ([L_ANKLE], L_KNEE, "leg_lower"),
]


def _rebuilt(body: np.ndarray, hands: np.ndarray, scales: PartScales) -> None:
    """MusePose's ``align_img`` on widened float32 arrays, in place."""
    original_body, original_hands = body.copy(), hands.copy()
    for targets, joint, part in _BODY_STEPS:
        scale = float(getattr(scales, part))
        if targets[0] < 0:  # a hand
            side = -1 - targets[0]
            assert joint is not None
            moved = (original_hands[side] - original_body[joint]) + body[joint]
            hands[side] = _scaled_about(moved, body[joint], scale)
        elif joint is None:
            body[targets] = _scaled_about(body[targets], body[NECK], scale)
        else:
            moved = (original_body[targets] - original_body[joint]) + body[joint]
            body[targets] = _scaled_about(moved, body[joint], scale)


def apply(alignment: Alignment, pose: NormalisedPose) -> NormalisedPose:
    """One dance frame → its pose on the reference person, in the reference's coordinates."""
    body = _widened(pose.body, alignment.video_ratio)
    hands = _widened(pose.hands, alignment.video_ratio)
    face = _widened(pose.face, alignment.video_ratio)
    with np.errstate(invalid="ignore"):
        _rebuilt(body, hands, alignment.scales)
    out = []
    for moved, before in ((body, pose.body), (hands, pose.hands), (face, pose.face)):
        moved[before == MISSING] = MISSING  # coordinate by coordinate, as MusePose does
        # Missing points then get the shift like any other: MusePose's arithmetic.
        moved = np.nan_to_num(moved, nan=MISSING) + alignment.offset
        moved[..., 0] = moved[..., 0] / alignment.reference_ratio
        out.append(moved)
    return NormalisedPose(out[0], pose.visible.copy(), out[1], out[2])


def align_dance(reference: NormalisedPose, reference_size: tuple[int, int],
                dance: Sequence[NormalisedPose], video_size: tuple[int, int], *,
                align_frame: int = 0, max_frame: int | None = None) -> list[NormalisedPose]:
    """MusePose's pose alignment of a whole dance (one pose per video frame).

    The scales come from frame ``align_frame``; frames ``align_frame`` up to (not
    including) ``max_frame`` are returned, as MusePose writes them (its default
    ``max_frame`` is 300)."""
    chosen = list(dance[align_frame:max_frame])
    if not chosen:
        raise ValueError(f"align_frame {align_frame} is past the dance's {len(dance)} frames")
    alignment = fit(reference, reference_size, chosen[0], video_size)
    return [apply(alignment, pose) for pose in chosen]
