"""Pose alignment (musepose_runner.pose.align): the dancer takes the reference's body and
keeps the moves."""

from __future__ import annotations

import numpy as np

from musepose_runner.pose.align import align_dance
from musepose_runner.pose.keypoints import NormalisedPose

# A person standing straight in a square image (MusePose's normalised coordinates).
_STANDING = np.array([
    [0.5, 0.2], [0.5, 0.3], [0.4, 0.3], [0.4, 0.4], [0.4, 0.5], [0.6, 0.3], [0.6, 0.4],
    [0.6, 0.5], [0.45, 0.6], [0.45, 0.75], [0.45, 0.9], [0.55, 0.6], [0.55, 0.75],
    [0.55, 0.9], [0.48, 0.18], [0.52, 0.18], [0.46, 0.2], [0.54, 0.2]], np.float32)


def _normalised(body: np.ndarray) -> NormalisedPose:
    return NormalisedPose(body.astype(np.float32), np.ones(18, bool),
                          np.full((2, 21, 2), -1, np.float32), np.zeros((0, 2), np.float32))


def test_alignment_gives_the_dancer_the_reference_body_and_keeps_the_moves() -> None:
    # The dancer is half the reference's size, elsewhere, and longer in the leg; in the
    # second frame they hold their right forearm out sideways.
    dancer = _STANDING * 0.5 + 0.1
    dancer[[9, 10, 12, 13], 1] += [0.02, 0.04, 0.02, 0.04]
    moving = dancer.copy()
    moving[4] = moving[3] + [-0.05, 0.0]
    aligned = align_dance(_normalised(_STANDING), (100, 100),
                          [_normalised(dancer), _normalised(moving)], (100, 100))
    # Every part takes the reference's size and the neck its place ...
    np.testing.assert_allclose(aligned[0].body, _STANDING, atol=1e-6)
    # ... and the moves are kept, at the reference's scale: the forearm of length 0.1
    # now points sideways from the reference's elbow at (0.4, 0.4).
    np.testing.assert_allclose(aligned[1].body[4], [0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(aligned[1].body[:4], _STANDING[:4], atol=1e-6)


