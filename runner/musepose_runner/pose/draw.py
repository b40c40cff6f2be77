"""Draw poses exactly as MusePose draws them for its pose guider.

The body: 17 limbs as filled ellipses whose half-width grows with the limb's length
(1 px under 5 px ... 8 px from 320 px), each in its colour from the OpenPose table, then the
whole canvas dimmed to 60%, then an 18-colour dot of radius 4 on every visible joint. The
hands: 20 bones in hues going round the colour wheel, width by length again, then a dot of
radius 3 on every point. The face is not drawn (MusePose's alignment draws without it).
Hidden body points (score 0.3 or lower) and missing hand/face points are left out.

MusePose then swaps the canvas's first and last channels (its OpenCV BGR→RGB call) before
the frames reach the pose guider; ``pose_frame`` does the same, so a body colour listed as
(255, 0, 0) ends up blue in the RGB frame, as in MusePose's training data and inference.

Pixel coordinates are computed as MusePose computes them in the numerical library versions
it pins (NumPy 1.x: a float32 point times an integer is float64), so each point lands on
the same pixel. Thick hand bones are drawn the way OpenCV 4.8 (MusePose's pin, and every
release up to 4.12) draws a thick line: OpenCV 4.13 and later clip the line to the image
first, which moves pixels wherever a bone leaves the canvas.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from musepose_runner.pose.keypoints import NormalisedPose

# Limbs as pairs of OpenPose body points, each with the colour at the same index.
LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
          (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
          (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
          (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20)]
DIM = 0.6
JOINT_RADIUS, HAND_POINT_RADIUS, FACE_POINT_RADIUS = 4, 3, 3
HAND_POINT_COLOR, FACE_POINT_COLOR = (0, 0, 255), (255, 255, 255)
XY_SHIFT = 16  # OpenCV's fixed-point precision for thick lines
EPS = 0.01  # hand and face points at pixel 0 (or off the top/left) are not drawn
# The aligned frames: drawn 1024 wide at the dance video's aspect, saved 768 high at the
# reference image's aspect (MusePose's pose_align.py).
CANVAS_WIDTH, FRAME_HEIGHT = 1024, 768


def stick_width(length: float) -> int:
    """Half-width of a limb or hand bone, from its length in pixels."""
    for width, below in enumerate((5, 10, 20, 40, 80, 160, 320), start=1):
        if length < below:
            return width
    return 8


def _hue_color(hue: float) -> tuple[float, float, float]:
    """Full-saturation, full-value HSV → RGB in 0..255 floats (OpenCV rounds them)."""
    s = v = 1.0
    sector = int(hue * 6.0)
    f = hue * 6.0 - sector
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][sector % 6]
    return (rgb[0] * 255, rgb[1] * 255, rgb[2] * 255)


HAND_COLORS = [_hue_color(i / float(len(HAND_EDGES))) for i in range(len(HAND_EDGES))]


def thick_line(canvas: np.ndarray, start: tuple[int, int], end: tuple[int, int],
               color: tuple[float, float, float], thickness: int) -> None:
    """``cv2.line`` as OpenCV 4.8 draws it: a quadrilateral ``thickness`` wide around the
    segment, corners in 16-bit fixed point, and a filled round cap on each end."""
    if thickness <= 1:
        cv2.line(canvas, start, end, color, thickness)
        return
    one = 1 << XY_SHIFT
    x0, y0, x1, y1 = (v << XY_SHIFT for v in (*start, *end))
    dx, dy = (x0 - x1) / one, (y1 - y0) / one
    squared = dx * dx + dy * dy
    half = thickness << (XY_SHIFT - 1)
    if abs(squared) > np.finfo(np.float64).eps:
        r = (half + (thickness & 1) * one * 0.5) / math.sqrt(squared)
        px, py = round(dy * r), round(dx * r)  # half to even, as OpenCV's cvRound
        corners = np.array([[x0 + px, y0 + py], [x0 - px, y0 - py],
                            [x1 - px, y1 - py], [x1 + px, y1 + py]], np.int32)
        cv2.fillConvexPoly(canvas, corners, color, cv2.LINE_8, XY_SHIFT)
    radius = (half + (one >> 1)) >> XY_SHIFT
    for x, y in ((x0, y0), (x1, y1)):
        centre = ((x + (one >> 1)) >> XY_SHIFT, (y + (one >> 1)) >> XY_SHIFT)
        cv2.circle(canvas, centre, radius, color, thickness=-1)


def _draw_body(canvas: np.ndarray, pose: NormalisedPose) -> np.ndarray:
    height, width = canvas.shape[:2]
    for (a, b), color in zip(LIMBS, COLORS, strict=False):
        if not (pose.visible[a] and pose.visible[b]):
            continue
        xs = pose.body[[a, b], 0] * float(width)  # float32, like the points
        ys = pose.body[[a, b], 1] * float(height)
        mid_x, mid_y = (xs[0] + xs[1]) / 2, (ys[0] + ys[1]) / 2
        dx, dy = float(xs[0] - xs[1]), float(ys[0] - ys[1])
        length = (dy ** 2 + dx ** 2) ** 0.5
        angle = math.degrees(math.atan2(dy, dx))
        polygon = np.asarray(cv2.ellipse2Poly(
            (int(mid_x), int(mid_y)), (int(length / 2), stick_width(length)), int(angle),
            0, 360, 1))
        cv2.fillConvexPoly(canvas, polygon, color)
    canvas = (canvas * DIM).astype(np.uint8)
    for index, color in enumerate(COLORS):
        if pose.visible[index]:
            x, y = pose.body[index]
            cv2.circle(canvas, (int(float(x) * width), int(float(y) * height)), JOINT_RADIUS,
                       color, thickness=-1)
    return canvas


def _pixel(point: np.ndarray, width: int, height: int) -> tuple[int, int]:
    return int(float(point[0]) * width), int(float(point[1]) * height)


def _draw_hands(canvas: np.ndarray, hands: np.ndarray) -> None:
    height, width = canvas.shape[:2]
    for hand in hands:
        for (a, b), color in zip(HAND_EDGES, HAND_COLORS, strict=True):
            (x1, y1), (x2, y2) = _pixel(hand[a], width, height), _pixel(hand[b], width, height)
            if min(x1, y1, x2, y2) > EPS:
                length = ((x1 - x2) ** 2 + (y1 - y2) ** 2) ** 0.5
                thick_line(canvas, (x1, y1), (x2, y2), color, stick_width(length))
        for point in hand:
            x, y = _pixel(point, width, height)
            if x > EPS and y > EPS:
                cv2.circle(canvas, (x, y), HAND_POINT_RADIUS, HAND_POINT_COLOR, thickness=-1)


def _draw_face(canvas: np.ndarray, face: np.ndarray) -> None:
    height, width = canvas.shape[:2]
    for point in face:
        x, y = _pixel(point, width, height)
        if x > EPS and y > EPS:
            cv2.circle(canvas, (x, y), FACE_POINT_RADIUS, FACE_POINT_COLOR, thickness=-1)


def draw_pose(pose: NormalisedPose, height: int, width: int, *, draw_face: bool = False
              ) -> np.ndarray:
    """MusePose's ``draw_pose``: a ``height`` x ``width`` canvas in its channel order."""
    canvas = _draw_body(np.zeros((height, width, 3), np.uint8), pose)
    _draw_hands(canvas, pose.hands)
    if draw_face:
        _draw_face(canvas, pose.face)
    return canvas


def canvas_size(video_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) MusePose draws an aligned frame at: 1024 wide, the video's aspect."""
    video_width, video_height = video_size
    return int(video_height * CANVAS_WIDTH / video_width), CANVAS_WIDTH


def frame_size(reference_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a saved aligned frame: 768 high, the reference's aspect, even."""
    ref_width, ref_height = reference_size
    return FRAME_HEIGHT, int((FRAME_HEIGHT / ref_height * ref_width) // 2 * 2)


def pose_frame(pose: NormalisedPose, video_size: tuple[int, int],
               reference_size: tuple[int, int]) -> np.ndarray:
    """The RGB frame MusePose's pose alignment writes for one aligned pose.

    Sizes are (width, height). The canvas takes the dance video's aspect and the frame the
    reference's, so the drawing is stretched between them, as in MusePose."""
    canvas = draw_pose(pose, *canvas_size(video_size))
    swapped = np.ascontiguousarray(canvas[:, :, ::-1])
    height, width = frame_size(reference_size)
    return cv2.resize(swapped, (width, height), interpolation=cv2.INTER_LINEAR)
