"""Keypoints (musepose_runner.pose.keypoints): MusePose's normalised coordinates, the
whole-body to OpenPose order, and the keypoint file format."""

from __future__ import annotations

import numpy as np
import pytest

from musepose_runner.pose.keypoints import (
    Pose,
    PoseSequence,
    dump_keypoint_file,
    from_wholebody,
    normalise,
    parse_keypoint_file,
)


def _person(scale: float, x: float, y: float) -> Pose:
    body = np.zeros((18, 3), np.float32)
    body[:, 2] = 1
    body[1, :2] = [x, y]  # neck
    body[2, :2], body[5, :2] = [x - 20 * scale, y], [x + 20 * scale, y]  # shoulders
    body[8, :2], body[11, :2] = [x - 10 * scale, y + 60 * scale], [x + 10 * scale, y + 60 * scale]
    return Pose(body)


def test_unsure_points_are_hidden_and_missing_hand_points_marked() -> None:
    body = np.zeros((18, 3), np.float32)
    body[:, :2], body[:, 2] = [50, 20], 0.9
    body[3, 2] = 0.29
    hand = np.full((21, 3), [10, 40, 0.9], np.float32)
    hand[5, 2] = 0.1
    pose = normalise(Pose(body, hands=[hand, hand]), 100, 200)
    assert pose.body[0].tolist() == pytest.approx([0.5, 0.1])  # of width and height
    assert not pose.visible[3] and pose.visible[4]
    assert pose.hands[0, 5].tolist() == [-1, -1]
    assert pose.hands[0, 4].tolist() == pytest.approx([0.1, 0.2])


def test_wholebody_to_openpose_order() -> None:
    points = np.zeros((133, 3), np.float32)
    points[5] = [10, 20, 1]  # left shoulder
    points[6] = [30, 20, 1]  # right shoulder
    pose = from_wholebody(points)
    assert pose.body[1].tolist() == [20, 20, 1]  # neck between the shoulders
    assert pose.body[2].tolist() == [30, 20, 1] and pose.body[5].tolist() == [10, 20, 1]


def test_keypoint_file_round_trip() -> None:
    sequence = PoseSequence(12.0, 64, 96, [_person(1.0, 30, 20), _person(1.0, 32, 20)])
    again = parse_keypoint_file(dump_keypoint_file(sequence))
    assert again.fps == 12 and len(again.frames) == 2
    assert again.frames[1].body[1, 0] == pytest.approx(32)
    with pytest.raises(ValueError, match="18 body points"):
        parse_keypoint_file('{"fps": 1, "width": 1, "height": 1, "frames": [{"body": [[0,0,1]]}]}')


