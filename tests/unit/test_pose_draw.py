"""Pose drawing (musepose_runner.pose.draw) in MusePose's colours and frame."""

from __future__ import annotations

import numpy as np

from musepose_runner.pose.draw import draw_pose, pose_frame
from musepose_runner.pose.keypoints import NormalisedPose


def test_pose_is_drawn_in_musepose_colours_and_frame() -> None:
    body = np.zeros((18, 2), np.float32)
    body[1], body[2] = [0.5, 0.5], [0.25, 0.5]  # neck and right shoulder, 32 px apart
    visible = np.zeros(18, bool)
    visible[[1, 2]] = True
    pose = NormalisedPose(body, visible, np.full((2, 21, 2), -1, np.float32),
                          np.zeros((0, 2), np.float32))
    canvas = draw_pose(pose, 128, 128)
    assert canvas[64, 48].tolist() == [153, 0, 0]  # the limb, red dimmed to 60%
    assert canvas[64, 64].tolist() == [255, 85, 0]  # the neck's dot, full colour
    assert canvas[64, 32].tolist() == [255, 170, 0]  # the right shoulder's dot
    assert not canvas[:50].any() and not canvas[80:].any()  # nothing else, no face
    # MusePose's saved frames: 1024 wide drawing, channels swapped, 768 high.
    frame = pose_frame(pose, (128, 128), (128, 128))
    assert frame.shape == (768, 768, 3)
    assert frame[384, 288].tolist() == [0, 0, 153]


