"""Draw poses as MusePose's pose guider saw them in training: OpenPose colours on black."""

from __future__ import annotations

import math

import cv2
import numpy as np

from musepose_runner.pose.keypoints import SCORE_THRESHOLD, Pose

LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
         (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
          (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
          (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
          (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20)]


def draw_pose(pose: Pose, width: int, height: int) -> np.ndarray:
    canvas = np.zeros((height, width, 3), np.uint8)
    stick = max(2, round(min(width, height) / 128))
    body = pose.body
    for (a, b), color in zip(LIMBS, COLORS, strict=False):
        if body[a, 2] < SCORE_THRESHOLD or body[b, 2] < SCORE_THRESHOLD:
            continue
        (xa, ya), (xb, yb) = body[a, :2], body[b, :2]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        polygon = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)),
                                   (int(length / 2), stick), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, tuple(int(c * 0.6) for c in color))
    for index, color in enumerate(COLORS):
        if body[index, 2] >= SCORE_THRESHOLD:
            cv2.circle(canvas, (int(body[index, 0]), int(body[index, 1])), stick + 1, color, -1)
    for hand in pose.hands:
        for edge, (a, b) in enumerate(HAND_EDGES):
            if hand[a, 2] >= SCORE_THRESHOLD and hand[b, 2] >= SCORE_THRESHOLD:
                hue = int(edge / len(HAND_EDGES) * 179)
                bgr = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
                cv2.line(canvas, (int(hand[a, 0]), int(hand[a, 1])),
                         (int(hand[b, 0]), int(hand[b, 1])), tuple(int(c) for c in bgr), 1)
    for x, y, score in pose.face:
        if score >= SCORE_THRESHOLD:
            cv2.circle(canvas, (int(x), int(y)), 1, (255, 255, 255), -1)
    return canvas
